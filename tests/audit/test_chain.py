"""The hash chain: intact logs verify, and any edit is caught at the edited entry."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import Session

from cmr_vault import cli
from cmr_vault.audit import service as audit_service
from cmr_vault.audit import transparency
from cmr_vault.audit.service import AuditEvent
from cmr_vault.audit.verify import VerifyReport, verify_database
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, get_settings
from tests.conftest import FrozenClock


def _append(session: Session, clock: FrozenClock, count: int) -> None:
    for i in range(count):
        audit_service.record(
            session,
            clock=clock,
            event=AuditEvent(
                actor="company:c1",
                action="profile.read",
                subject=f"s{i % 3}",
                resource="profile.email",
                purpose="newsletter",
                details={"fields": ["email"]},
            ),
        )
        clock.advance(seconds=1)
    session.commit()


def _verify(session: Session, runtime: Runtime) -> VerifyReport:
    key = transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin)
    return verify_database(session, verifier_key=key)


def _tamper(session: Session, sql: str) -> None:
    """Edit the log behind the vault's back, as an attacker with database access would."""
    if session.get_bind().dialect.name == "postgresql":
        # Only a superuser can lift the append-only trigger; the app's role cannot.
        session.exec(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
    session.exec(text(sql))
    session.commit()


def test_an_untouched_chain_verifies(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 10)
    result = _verify(db_session, runtime)
    assert result.ok
    assert result.entries == 10


def test_a_modified_entry_breaks_verification_at_that_entry(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 10)
    _tamper(db_session, "UPDATE audit_entry SET purpose = 'marketing' WHERE seq = 4")
    result = _verify(db_session, runtime)
    assert not result.ok
    assert result.first_broken_seq == 4
    assert "entry 4 was modified" in result.problems[0]


def test_a_deleted_entry_breaks_verification(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 6)
    _tamper(db_session, "DELETE FROM audit_entry WHERE seq = 3")
    result = _verify(db_session, runtime)
    assert result.first_broken_seq == 3


def test_a_deleted_last_entry_is_caught_by_the_head(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 6)
    _tamper(db_session, "DELETE FROM audit_entry WHERE seq = 6")
    result = _verify(db_session, runtime)
    assert not result.ok
    assert "the head says 6 entries but 5 were found" in " ".join(result.problems)


def test_postgres_refuses_updates_to_the_log(db_session: Session, clock: FrozenClock) -> None:
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    _append(db_session, clock, 2)
    with pytest.raises(Exception, match="append-only"):
        db_session.exec(text("UPDATE audit_entry SET purpose = 'x' WHERE seq = 1"))
    db_session.rollback()
    with pytest.raises(Exception, match="append-only"):
        db_session.exec(text("DELETE FROM audit_entry"))


def test_audit_verify_command_names_the_broken_entry(
    settings: Settings,
    runtime: Runtime,
    db_session: Session,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _append(db_session, clock, 5)
    monkeypatch.setenv("CMR_VAULT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CMR_VAULT_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    ok = CliRunner().invoke(cli.main, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    _tamper(db_session, "UPDATE audit_entry SET outcome = 'refused' WHERE seq = 2")
    broken = CliRunner().invoke(cli.main, ["audit", "verify"])
    get_settings.cache_clear()
    assert broken.exit_code == 1
    assert "entry 2 was modified" in broken.output


def test_one_logical_event_has_one_encoding() -> None:
    composed = audit_service.canonical_json({"b": "caf\u00e9", "a": 1})
    decomposed = audit_service.canonical_json({"a": 1, "b": "cafe\u0301"})
    assert composed == decomposed
