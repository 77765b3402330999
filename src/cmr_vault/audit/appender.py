"""Group commit for the audit log: many requests' entries, one transaction, one fsync.

A company read changes nothing but the log, so its entry need not share a transaction with
anything; what it needs is to be durable before the response leaves. Requests hand their entry to
this appender and wait; a single thread per process drains whatever has queued up, appends it
as one batch under the head lock, commits once, and wakes every waiter. Under load the batches
grow, so the cost of the commit (and of the lock) is shared by everyone in the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from concurrent.futures import Future

from sqlalchemy import Engine

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.service import AuditEvent
from cmr_vault.clock import Clock

_STOP = object()
#: An event loop and the future one of its requests awaits.
_LoopWaiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[int]"]


class GroupCommitAppender:
    """One background thread per process that batches audit appends into transactions."""

    def __init__(self, *, engine: Engine, clock: Clock, max_batch: int = 5000) -> None:
        self._engine = engine
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def append(self, event: AuditEvent, *, timeout: float = 30.0) -> int:
        """Append and wait until the entry is committed; returns its sequence number.

        Raises TimeoutError (the caller must then not report success) or the commit's error.
        """
        return self.submit(event).result(timeout=timeout)

    async def append_async(self, event: AuditEvent, *, timeout: float = 30.0) -> int:
        """`append` for an event loop: the request waits for its commit without a thread.

        A request must hold no write lock of its own while it waits (on SQLite the batch's
        BEGIN IMMEDIATE would wait for it for ever): append after its transaction ended, or
        from a read-only one. A request that stops waiting before its batch is taken (timeout,
        client gone) is left out of the log, as it sends no answer.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        future = self._put(event, (loop, waiter))
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException:
            future.cancel()
            raise

    def submit(self, event: AuditEvent) -> Future[int]:
        """Queue an event; the future resolves to its sequence number once durable."""
        return self._put(event, None)

    def _put(self, event: AuditEvent, waiter: _LoopWaiter | None) -> Future[int]:
        self._ensure_running()
        future: Future[int] = Future()
        self._queue.put((event, future, waiter))
        return future

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="audit-group-commit", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _commit(self, batch: list[tuple[AuditEvent, Future[int], _LoopWaiter | None]]) -> None:
        # A request that stopped waiting (it timed out, or its client left) cancelled its
        # future and sends no answer: its entry is left out. The rest can no longer be
        # cancelled, so every one of them hears the outcome.
        batch = [item for item in batch if item[1].set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            with self._engine.begin() as connection:
                entries = audit_service.append_entries(
                    connection, clock=self._clock, events=[event for event, _, _ in batch]
                )
        except Exception as exc:  # every waiter must hear about the failure
            for _, future, _ in batch:
                future.set_exception(exc)
            _wake(batch, [exc] * len(batch))
            return
        for (_, future, _), entry in zip(batch, entries, strict=True):
            future.set_result(entry.seq)
        _wake(batch, [entry.seq for entry in entries])


def _wake(batch: list[tuple[AuditEvent, Future[int], _LoopWaiter | None]],
          outcomes: list[int | Exception]) -> None:
    """Hand each event loop its waiters' outcomes with one wake-up per batch.

    One `call_soon_threadsafe` per entry (what `asyncio.wrap_future` does) wrote to the loop's
    self-pipe once per read: the loop woke as many times as the batch had entries.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | Exception]]]
    by_loop = {}
    for (_, _, waiter), outcome in zip(batch, outcomes, strict=True):
        if waiter is not None:
            by_loop.setdefault(waiter[0], []).append((waiter[1], outcome))
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to answer
            loop.call_soon_threadsafe(_resolve, waiting)


def _resolve(waiting: list[tuple[asyncio.Future[int], int | Exception]]) -> None:
    for waiter, outcome in waiting:
        if waiter.done():
            continue  # it stopped waiting (timeout) after its batch was taken
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
