"""One transaction per request, committed once before the response leaves.

Litestar runs a generator dependency's code after `yield` once the handler has returned and
before the response is sent, so a request's audit entry is durable before anyone sees the
answer; an exception from the handler is thrown into the generator and rolls everything back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.datastructures import State
from litestar.types import Scope
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from cmr_vault.db.engine import IMMEDIATE_OPTION
from cmr_vault.errors import Unavailable

_TRANSACTION = "cmr_vault.transaction"
log = logging.getLogger(__name__)


class DatabaseGate:
    """How many of one event loop's requests use the database at once, and how many may wait.

    A request holds its pooled connection from its first statement to its commit, and both run
    in worker threads. Admitting more requests than there are connections lets threads and
    connections wait on each other: on PostgreSQL every pooled connection sat idle in an open
    transaction while its request waited for a thread, and the vault never recovered. So a
    request waits here, on the event loop, for one of `capacity` turns; when `queue` requests
    already wait, or it has waited `max_wait` seconds, it is shed with 503 and Retry-After. On
    SQLite the capacity is 1: its one write lock (BEGIN IMMEDIATE) makes requests take turns
    anyway, and waiting for a thread while holding it would starve the rest.
    """

    def __init__(self, *, capacity: int, queue: int, max_wait: float) -> None:
        self._turns = asyncio.Semaphore(capacity)
        self._queue, self._max_wait = queue, max_wait
        self._waiting = 0
        self._progress = asyncio.Event()

    @property
    def full(self) -> bool:
        """Every turn is taken and the queue is as long as it may be: a newcomer is shed."""
        return self._turns.locked() and self._waiting >= self._queue

    async def enter(self) -> None:
        """Take a turn, or raise `Unavailable` when too many wait or the wait is too long."""
        if self.full:
            raise Unavailable("The vault is busy: too many requests wait for the database.",
                              retry_after=1)
        self._waiting += 1
        try:
            async with asyncio.timeout(self._max_wait):
                await self._turns.acquire()
        except TimeoutError:
            raise Unavailable(
                f"The vault is busy: no database turn came within {self._max_wait:g} s.",
                retry_after=5) from None
        finally:
            self._waiting -= 1

    def leave(self) -> None:
        """Give the turn back, and tell anyone watching that the database moves."""
        self._turns.release()
        self._progress.set()
        self._progress = asyncio.Event()

    async def moving(self, within: float) -> bool:
        """False when every turn is taken and none came back within `within` seconds: the
        database (or something holding its lock) is stuck, however busy the vault is."""
        if not self._turns.locked():
            return True
        try:
            async with asyncio.timeout(within):
                await self._progress.wait()
        except TimeoutError:
            return False
        return True


def database_gate(state: State, *, read_only: bool = False) -> DatabaseGate:
    """This event loop's gate (a process serves from one loop; test clients bring their own).

    `read_only` work (a deferred transaction on its own connection, see `read_only_connection`)
    takes no write lock, so on SQLite it has a gate of its own, as wide as the pool, instead of
    queueing behind writers for the one turn; elsewhere it shares the one gate with writes.
    """
    gates: dict[tuple[int, bool], DatabaseGate] = state.db_gates
    limits: dict[str, Any] = state.db_gate_limits
    separate = read_only and bool(limits.get("read_capacity"))
    key = (id(asyncio.get_running_loop()), separate)
    if key not in gates:
        gates[key] = DatabaseGate(
            capacity=limits["read_capacity"] if separate else limits["capacity"],
            queue=limits["queue"], max_wait=limits["max_wait"])
    return gates[key]


class RequestTransaction:
    """A request's session and its turn at the gate, ended exactly once by whoever comes first.

    Litestar closes a generator dependency only when every dependency of the request was
    resolved: when one fails (a body that is not a form, a missing sign-in) after the session
    was opened, the generator is left to the garbage collector, and on SQLite the gate stays
    taken (tens of seconds to minutes) and every request that touches the database waits. So
    the app's exception hook ends a transaction the dependency never got to end.
    """

    def __init__(self, engine: Engine, gate: DatabaseGate) -> None:
        self._engine, self._gate = engine, gate
        self._holds_gate = False
        self._ended = False
        self.session: Session | None = None

    async def begin(self) -> Session:
        """Wait for a turn at the gate and open the session."""
        await self._gate.enter()
        self._holds_gate = True
        self.session = Session(self._engine, expire_on_commit=False)
        return self.session

    async def end(self, *, commit: bool) -> None:
        """Commit or roll back and close, in one worker thread (it may fsync); free the gate."""
        if self._ended:
            return
        self._ended = True
        try:
            if self.session is not None:
                await anyio.to_thread.run_sync(_finish, self.session, commit)
        finally:
            if self._holds_gate:
                self._holds_gate = False
                self._gate.leave()


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            _roll_back(session)
    finally:
        session.close()


def _roll_back(session: Session) -> None:
    """Roll back after a failed request, whose own error is the one the client must hear.

    When the database went away mid-request the rollback fails as well, and raising that second
    error from a dependency's cleanup turned a 503 into a 500 (Litestar groups cleanup errors).
    A transaction whose connection is gone was rolled back by the server already.
    """
    try:
        session.rollback()
    except DBAPIError as exc:
        if not exc.connection_invalidated and not isinstance(exc, OperationalError):
            raise
        log.warning("rollback after a lost database connection: %s",
                    type(exc.orig or exc).__name__)


async def provide_db_session(
    request: Request[Any, Any, Any], state: State
) -> AsyncGenerator[Session, None]:
    """The request's session; commits on success.

    The request first waits for its turn at the database gate (`DatabaseGate`). The body was
    read before (`web.bodies`), so no turn is ever spent waiting for a client.
    """
    transaction = RequestTransaction(state.engine, database_gate(state))
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
    with read_only_connection(engine) as conn, Session(bind=conn) as session:
        yield session


@contextmanager
def read_only_connection(engine: Engine) -> Iterator[Connection]:
    """A deferred transaction on a pooled connection, for SQLAlchemy Core reads: no write lock
    on SQLite (so a group-commit append it waits for afterwards can never wait on it), rolled
    back when done since it changed nothing."""
    with engine.connect() as conn:
        yield conn.execution_options(**{IMMEDIATE_OPTION: False})


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
