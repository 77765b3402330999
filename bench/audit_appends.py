"""Durable audit appends per second: group commit against one transaction per entry.

    python bench/audit_appends.py [--threads 64] [--seconds 5] [--postgres URL]

Both modes append the same events from the same number of concurrent threads (as concurrent
requests would) and count only entries whose commit returned (durable: SQLite WAL with
synchronous=FULL, PostgreSQL with synchronous_commit on). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.appender import GroupCommitAppender
from cmr_vault.audit.service import AuditEvent
from cmr_vault.clock import SystemClock
from cmr_vault.db.engine import check_durability, make_engine
from cmr_vault.db.migrate import upgrade

EVENT = AuditEvent(actor="company:bench", action="profile.read", subject="0" * 32,
                   resource="profile.email", purpose="newsletter", outcome="allow",
                   details={"fields": ["email"], "rule_ids": ["read.granted"],
                            "policy_version": "bench"})


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


def measure(name: str, engine: Engine, threads: int, seconds: float) -> None:
    check_durability(engine)
    appender = GroupCommitAppender(engine=engine, clock=SystemClock())
    single = run_threads(threads, seconds, single_row(engine)) / seconds
    grouped = run_threads(threads, seconds, lambda: appender.append(EVENT)) / seconds
    appender.close()
    print(f"{name:10} single-row: {single:10.0f}/s   group commit: {grouped:10.0f}/s   "
          f"ratio {grouped / single:6.1f}×")


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
