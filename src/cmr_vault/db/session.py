"""One transaction per request, committed once before the response leaves.

Litestar runs a generator dependency's code after `yield` once the handler has returned and
before the response is sent, so a request's audit entry is durable before anyone sees the
answer; an exception from the handler is thrown into the generator and rolls everything back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager

import anyio.to_thread
from litestar.datastructures import State
from sqlalchemy import Engine
from sqlmodel import Session


async def provide_db_session(state: State) -> AsyncGenerator[Session, None]:
    """The request's session; commits (in a worker thread: it may fsync) on success.

    On SQLite a request's first statement takes the database's one write lock (BEGIN
    IMMEDIATE) and keeps it until the commit, while its later steps wait for a free worker
    thread. Many requests at once would take every thread and wait for that lock, starving the
    request that holds it; so on SQLite requests take turns here, on the event loop, before
    touching the database. PostgreSQL has no such lock and no gate.
    """
    gates: dict[int, asyncio.Lock] | None = getattr(state, "db_gates", None)
    gate = gates.setdefault(id(asyncio.get_running_loop()), asyncio.Lock()) \
        if gates is not None else None
    async with gate or contextlib.nullcontext():
        session = Session(state.engine, expire_on_commit=False)
        try:
            yield session
        except BaseException:
            await anyio.to_thread.run_sync(session.rollback)
            raise
        else:
            await anyio.to_thread.run_sync(session.commit)
        finally:
            await anyio.to_thread.run_sync(session.close)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """The same contract for the CLI and background work: commit on success, else roll back."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()
