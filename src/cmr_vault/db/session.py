"""One transaction per request, committed once before the response leaves.

Litestar runs a generator dependency's code after `yield` once the handler has returned and
before the response is sent, so a request's audit entry is durable before anyone sees the
answer; an exception from the handler is thrown into the generator and rolls everything back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.datastructures import State
from litestar.types import Scope
from sqlalchemy import Engine
from sqlmodel import Session

from cmr_vault.db.engine import IMMEDIATE_OPTION

_TRANSACTION = "cmr_vault.transaction"


def sqlite_gate(state: State) -> asyncio.Lock | None:
    """This event loop's turn-taking lock on SQLite; None on PostgreSQL (no gate needed)."""
    gates: dict[int, asyncio.Lock] | None = getattr(state, "db_gates", None)
    if gates is None:
        return None
    return gates.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())


class RequestTransaction:
    """A request's session and its turn at the gate, ended exactly once by whoever comes first.

    Litestar closes a generator dependency only when every dependency of the request was
    resolved: when one fails (a body that is not a form, a missing sign-in) after the session
    was opened, the generator is left to the garbage collector, and on SQLite the gate stays
    taken (tens of seconds to minutes) and every request that touches the database waits. So
    the app's exception hook ends a transaction the dependency never got to end.
    """

    def __init__(self, engine: Engine, gate: asyncio.Lock | None) -> None:
        self._engine, self._gate = engine, gate
        self._holds_gate = False
        self._ended = False
        self.session: Session | None = None

    async def begin(self) -> Session:
        """Wait for the gate (SQLite) and open the session."""
        if self._gate is not None:
            await self._gate.acquire()
            self._holds_gate = True
        self.session = Session(self._engine, expire_on_commit=False)
        return self.session

    async def end(self, *, commit: bool) -> None:
        """Commit or roll back (in a worker thread: it may fsync), close, free the gate."""
        if self._ended:
            return
        self._ended = True
        try:
            if self.session is not None:
                await anyio.to_thread.run_sync(
                    self.session.commit if commit else self.session.rollback)
        finally:
            try:
                if self.session is not None:
                    await anyio.to_thread.run_sync(self.session.close)
            finally:
                if self._holds_gate and self._gate is not None:
                    self._holds_gate = False
                    self._gate.release()


async def provide_db_session(
    request: Request[Any, Any, Any], state: State
) -> AsyncGenerator[Session, None]:
    """The request's session; commits on success.

    On SQLite a request's first statement takes the database's one write lock (BEGIN
    IMMEDIATE) and keeps it until the commit, while its later steps wait for a free worker
    thread. Many requests at once would take every thread and wait for that lock, starving the
    request that holds it; so on SQLite requests take turns here, on the event loop, before
    touching the database. PostgreSQL has no such lock and no gate. The body was read before
    (`web.bodies`), so no turn is ever spent waiting for a client.
    """
    transaction = RequestTransaction(state.engine, sqlite_gate(state))
    request.scope[_TRANSACTION] = transaction  # type: ignore[literal-required]
    try:
        session = await transaction.begin()
        yield session
    except BaseException:
        await transaction.end(commit=False)
        raise
    else:
        await transaction.end(commit=True)


async def end_abandoned_transaction(_exc: Exception, scope: Scope) -> None:
    """After any exception: roll back and free a transaction its dependency never ended."""
    transaction: RequestTransaction | None = scope.get(_TRANSACTION)  # type: ignore[assignment]
    if transaction is not None:
        await transaction.end(commit=False)


@contextmanager
def read_aside(engine: Engine) -> Iterator[Session]:
    """A deferred, read-only look on a connection of its own: it takes no write lock and no
    turn at the SQLite gate, so a check made before a request's transaction costs nobody
    anything (on SQLite in WAL mode readers never wait for the writer)."""
    with engine.connect() as conn, Session(
            bind=conn.execution_options(**{IMMEDIATE_OPTION: False})) as session:
        yield session


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
