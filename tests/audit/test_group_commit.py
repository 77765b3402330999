"""The group-commit appender: a request that stops waiting never stops the others' commits."""

from __future__ import annotations

from concurrent.futures import Future

from sqlmodel import Session, col, select

from cmr_vault.audit.models import AuditEntry
from cmr_vault.audit.service import AuditEvent
from cmr_vault.runtime import Runtime


def test_a_read_that_gave_up_waiting_is_left_out_and_the_next_append_commits(
    runtime: Runtime, db_session: Session
) -> None:
    appender = runtime.audit_appender
    gave_up: Future[int] = Future()
    gave_up.cancel()  # what a timed-out or disconnected request's wait does to its future
    appender._commit([(AuditEvent(actor="company:a", action="profile.read"), gave_up)])

    waited = appender.submit(AuditEvent(actor="company:b", action="profile.read"))

    assert waited.result(timeout=30) == 1
    db_session.rollback()
    actors = db_session.exec(select(AuditEntry.actor).order_by(col(AuditEntry.seq))).all()
    assert actors == ["company:b"]
