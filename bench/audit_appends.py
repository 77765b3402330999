"""Durable audit appends per second: group commit against one transaction per entry, and
against the raw batched-insert ceiling.

    python bench/audit_appends.py [--threads 64] [--seconds 5] [--postgres URL]

Both modes append the same events from the same number of concurrent threads (as concurrent
requests would) and count only entries whose commit returned (durable: SQLite WAL with
synchronous=FULL, PostgreSQL with synchronous_commit on). The ceiling is one thread inserting
already-built rows of the same size, `RAW_BATCH` a transaction, with no chain and no head: what
the database itself can take. Two more lines: the same raw inserts in commits of as many rows
as there are writers (the largest batch N waiting writers can form), and group commit from N
coroutines on one event loop, which is how a `serve` worker's company reads append.
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
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


def run_coroutines(writers: int, seconds: float, appender: GroupCommitAppender) -> int:
    """`writers` coroutines on one event loop appending in a loop, as a worker's reads do;
    return how many appends finished in `seconds`."""

    async def run() -> int:
        stop = time.monotonic() + seconds
        done = 0

        async def write() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await appender.append_async(EVENT)
                done += 1

        await asyncio.gather(*(write() for _ in range(writers)))
        return done

    return asyncio.run(run())


def single_row(engine: Engine) -> Callable[[], None]:
    clock = SystemClock()

    def append() -> None:
        with Session(engine) as session:
            audit_service.record(session, clock=clock, event=EVENT)
            session.commit()

    return append


RAW_BATCH = 1000


def raw_batched_inserts(engine: Engine, seconds: float, batch: int = RAW_BATCH,
                        first_seq: int = 10**9) -> float:
    """Entries per second inserted as pre-built rows, `batch` per durable transaction, from
    sequence number `first_seq` on (clear of the log and of other runs)."""
    with Session(engine) as session:
        sample = audit_service.record(session, clock=SystemClock(), event=EVENT)
        session.rollback()
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    seq = first_seq
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        rows = [{**sample.row(), "seq": seq + i} for i in range(batch)]
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        seq += batch
        done += batch
    return done / (time.perf_counter() - start)


def measure(name: str, engine: Engine, threads: int, seconds: float) -> None:
    check_durability(engine)
    appender = GroupCommitAppender(engine=engine, clock=SystemClock())
    single = run_threads(threads, seconds, single_row(engine)) / seconds
    grouped = run_threads(threads, seconds, lambda: appender.append(EVENT)) / seconds
    on_loop = run_coroutines(threads, seconds, appender) / seconds
    appender.close()
    raw = raw_batched_inserts(engine, seconds)
    # N closed-loop writers can never put more than N entries in one commit: the ceiling of
    # raw inserts in commits of that size, beside the 1000-row one.
    raw_shaped = raw_batched_inserts(engine, seconds, batch=threads, first_seq=2 * 10**9)
    print(
        f"{name:10} single-row: {single:8.0f}/s   group commit: {grouped:8.0f}/s "
        f"({grouped / single:5.1f}× single-row)   raw batched inserts: {raw:8.0f}/s   "
        f"group commit = {100 * grouped / raw:4.0f} % of raw\n"
        f"{'':10} raw inserts {threads} a commit (the most {threads} writers can form): "
        f"{raw_shaped:8.0f}/s   group commit = {100 * grouped / raw_shaped:4.0f} % of that\n"
        f"{'':10} group commit from {threads} coroutines on one event loop (as a worker's "
        f"reads append): {on_loop:8.0f}/s = {100 * on_loop / raw:4.0f} % of raw, "
        f"{100 * on_loop / raw_shaped:4.0f} % of {threads} a commit"
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
