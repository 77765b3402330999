"""Durable audit appends per second: group commit against one transaction per entry, and
against the raw batched-insert ceiling.

    python bench/audit_appends.py [--threads 64] [--seconds 5] [--postgres URL]

Both modes append the same events from the same number of concurrent threads (as concurrent
requests would) and count only entries whose commit returned (durable: SQLite WAL with
synchronous=FULL, PostgreSQL with synchronous_commit on). The ceiling is one thread inserting
already-built rows of the same size, `RAW_BATCH` a transaction, with no chain and no head: what
the database itself can take. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, insert, make_url, text
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.appender import GroupCommitAppender
from cmr_vault.audit.models import AuditEntry
from cmr_vault.audit.service import AuditEvent
from cmr_vault.clock import SystemClock
from cmr_vault.db.engine import check_durability, make_engine
from cmr_vault.db.migrate import upgrade

EVENT = AuditEvent(
    actor="company:bench",
    action="profile.read",
    subject="0" * 32,
    resource="profile.email",
    purpose="newsletter",
    outcome="allow",
    details={"fields": ["email"], "rule_ids": ["read.granted"], "policy_version": "bench"},
)


def run_threads(threads: int, seconds: float, work: Callable[[], None]) -> int:
    """Run `work` in a loop on many threads for `seconds`; return how many calls finished."""
    done = [0] * threads
    stop = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < stop:
            work()
            done[index] += 1

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done)


def single_row(engine: Engine) -> Callable[[], None]:
    clock = SystemClock()

    def append() -> None:
        with Session(engine) as session:
            audit_service.record(session, clock=clock, event=EVENT)
            session.commit()

    return append


RAW_BATCH = 1000


def raw_batched_inserts(engine: Engine, seconds: float) -> float:
    """Entries per second inserted as pre-built rows, RAW_BATCH per durable transaction."""
    with Session(engine) as session:
        sample = audit_service.record(session, clock=SystemClock(), event=EVENT)
        session.rollback()
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    seq = 10**9
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        rows = [{**sample.row(), "seq": seq + i} for i in range(RAW_BATCH)]
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        seq += RAW_BATCH
        done += RAW_BATCH
    return done / (time.perf_counter() - start)


def measure(name: str, engine: Engine, threads: int, seconds: float) -> None:
    check_durability(engine)
    appender = GroupCommitAppender(engine=engine, clock=SystemClock())
    single = run_threads(threads, seconds, single_row(engine)) / seconds
    grouped = run_threads(threads, seconds, lambda: appender.append(EVENT)) / seconds
    appender.close()
    raw = raw_batched_inserts(engine, seconds)
    print(
        f"{name:10} single-row: {single:8.0f}/s   group commit: {grouped:8.0f}/s "
        f"({grouped / single:5.1f}× single-row)   raw batched inserts: {raw:8.0f}/s   "
        f"group commit = {100 * grouped / raw:4.0f} % of raw"
    )


def postgres_database(url: str) -> tuple[str, Callable[[], None]]:
    name = f"cmr_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return make_url(url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--postgres", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        measure("SQLite", engine, args.threads, args.seconds)
        engine.dispose()
    if args.postgres:
        url, drop = postgres_database(args.postgres)
        engine = make_engine(url)
        upgrade(engine)
        measure("PostgreSQL", engine, args.threads, args.seconds)
        engine.dispose()
        drop()


if __name__ == "__main__":
    main()
