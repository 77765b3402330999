"""The group-commit appender: concurrent reads share commits, each hears its own entry, and a
request that stops waiting never stops the others' commits."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
from sqlmodel import Session, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.models import AuditEntry
from cmr_vault.audit.service import AuditEvent
from cmr_vault.runtime import Runtime


def _read_by(actor: str) -> AuditEvent:
    return AuditEvent(actor=actor, action="profile.read")


def test_a_read_that_gave_up_waiting_is_left_out_and_the_next_append_commits(
    runtime: Runtime, db_session: Session
) -> None:
    appender = runtime.audit_appender
    gave_up: Future[int] = Future()
    gave_up.cancel()  # what a timed-out or disconnected request's wait does to its future
    appender._commit([(_read_by("company:a"), gave_up, None)])

    waited = appender.submit(_read_by("company:b"))

    assert waited.result(timeout=30) == 1
    db_session.rollback()
    actors = db_session.exec(select(AuditEntry.actor).order_by(col(AuditEntry.seq))).all()
    assert actors == ["company:b"]


def _logged_actors(db_session: Session) -> list[str]:
    db_session.rollback()
    return list(db_session.exec(select(AuditEntry.actor).order_by(col(AuditEntry.seq))).all())


def test_concurrent_reads_on_an_event_loop_each_hear_their_own_durable_entry(
    runtime: Runtime, db_session: Session
) -> None:
    appender = runtime.audit_appender

    async def many() -> list[int]:
        return await asyncio.gather(*(
            appender.append_async(_read_by(f"company:{n}"))
            for n in range(200)))

    numbers = asyncio.run(many())

    assert sorted(numbers) == list(range(1, 201))
    actors = _logged_actors(db_session)
    assert len(actors) == 200
    assert all(actors[seq - 1] == f"company:{n}" for n, seq in enumerate(numbers))


def test_a_read_that_times_out_before_its_batch_is_taken_is_left_out(
    runtime: Runtime, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    appender = runtime.audit_appender
    release = threading.Event()
    commit = appender._commit

    def held(batch: list[Any]) -> None:
        release.wait(30)
        commit(batch)

    monkeypatch.setattr(appender, "_commit", held)
    first = appender.submit(_read_by("company:first"))
    for _ in range(3000):  # until the appender's thread has taken it (and waits on `release`)
        if appender._queue.empty():
            break
        time.sleep(0.01)

    async def gives_up() -> None:
        with pytest.raises(TimeoutError):
            await appender.append_async(_read_by("company:gone"), timeout=0.05)

    asyncio.run(gives_up())
    release.set()
    assert first.result(timeout=30) == 1
    assert appender.submit(_read_by("company:next")).result(timeout=30) == 2
    assert _logged_actors(db_session) == ["company:first", "company:next"]


def test_a_failed_commit_reaches_every_waiting_read(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(audit_service, "append_entries", disk_full)

    async def many() -> list[object]:
        return await asyncio.gather(*(
            runtime.audit_appender.append_async(_read_by(f"company:{n}"))
            for n in range(20)), return_exceptions=True)

    outcomes = asyncio.run(many())

    assert all(isinstance(outcome, OSError) for outcome in outcomes), outcomes
