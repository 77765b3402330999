"""Backup and restore drill (checklist R8): the key store remembers the newest signed head,
so a restored backup of the main database is refused at start instead of silently giving its
sequence numbers to other events, until an operator accepts it, on the record."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import create_engine, make_url, text
from sqlmodel import col, select

from cmr_vault import cli
from cmr_vault.app import create_app
from cmr_vault.audit import service as audit_service
from cmr_vault.audit import transparency, witness
from cmr_vault.audit.models import AuditEntry
from cmr_vault.audit.signer import check_not_rolled_back, sign_once
from cmr_vault.audit.witness import RolledBackError
from cmr_vault.db.session import unit_of_work
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import FrozenClock


@dataclass
class Backup:
    """Last night's backup of the main database, and its restore (the key store is kept)."""

    runtime: Runtime
    database_url: str
    copy: str = ""

    def take(self) -> None:
        self.runtime.engine.dispose()
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            self.copy = f"{url.database}.backup"
            _sqlite_copy(str(url.database), self.copy)
        else:
            self.copy = f"cmr_bk_{uuid.uuid4().hex[:12]}"
            _postgres(self.database_url, f'CREATE DATABASE "{self.copy}" TEMPLATE "{url.database}"')

    def restore(self) -> None:
        self.runtime.engine.dispose()
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            _sqlite_copy(self.copy, str(url.database))
        else:
            _postgres(self.database_url, f'DROP DATABASE "{url.database}" WITH (FORCE)',
                      f'CREATE DATABASE "{url.database}" TEMPLATE "{self.copy}"')

    def drop(self) -> None:
        if self.copy and make_url(self.database_url).get_backend_name() != "sqlite":
            _postgres(self.database_url, f'DROP DATABASE IF EXISTS "{self.copy}" WITH (FORCE)')


def _sqlite_copy(source: str, target: str) -> None:
    """SQLite's online backup: consistent, WAL included."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _postgres(database_url: str, *statements: str) -> None:
    admin = create_engine(make_url(database_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    admin.dispose()


@pytest.fixture
def backup(runtime: Runtime, database_url: str) -> Iterator[Backup]:
    made = Backup(runtime, database_url)
    yield made
    made.drop()


def _events(runtime: Runtime, clock: FrozenClock, count: int, action: str = "profile.read"
            ) -> None:
    with unit_of_work(runtime.engine) as session:
        for _ in range(count):
            audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
                actor="company:acme", action=action, resource="profile.email"))
            clock.advance(seconds=1)


@pytest.fixture
def restored(runtime: Runtime, clock: FrozenClock, backup: Backup) -> Runtime:
    """A backup taken at 3 entries, 2 more written and signed, then the backup restored."""
    _events(runtime, clock, 3)
    backup.take()
    _events(runtime, clock, 2)
    sign_once(runtime)
    backup.restore()
    return runtime


def _start(settings: Settings, runtime: Runtime) -> None:
    with TestClient(create_app(settings, runtime=runtime)) as client:
        assert client.get("/health").status_code == 200


def test_the_signer_hands_each_new_head_to_the_key_store(
    runtime: Runtime, clock: FrozenClock
) -> None:
    _events(runtime, clock, 3)
    assert sign_once(runtime) == 3
    held = witness.witnessed(runtime.keystore_engine)
    assert held is not None and held.size == 3


def test_the_witness_never_moves_back(runtime: Runtime, clock: FrozenClock) -> None:
    _events(runtime, clock, 2)
    sign_once(runtime)
    with unit_of_work(runtime.engine) as session:
        two = transparency.latest_checkpoint(session)
    _events(runtime, clock, 2)
    sign_once(runtime)
    assert two is not None
    witness.remember(runtime.keystore_engine, two)
    held = witness.witnessed(runtime.keystore_engine)
    assert held is not None and held.size == 4


def test_a_restored_backup_is_refused_at_start(restored: Runtime) -> None:
    with pytest.raises(RolledBackError, match="holds 3 entries, but this vault signed a head "
                                              "of 5 entries"):
        check_not_rolled_back(restored)  # what the app's start and `serve` run first


def test_a_restored_backup_written_to_since_is_refused_as_a_fork(
    restored: Runtime, clock: FrozenClock
) -> None:
    _events(restored, clock, 4, action="grant.created")
    with pytest.raises(RolledBackError, match="forked"):
        check_not_rolled_back(restored)


def test_serve_names_the_rollback_and_the_way_on(
    restored: Runtime, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def started(*_: object, **__: object) -> None:
        pytest.fail("the vault started on a rolled-back log")

    monkeypatch.setattr("uvicorn.run", started)
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code == 1
    assert "restored from an older backup" in result.output
    assert "cmr-vault audit accept-rollback" in result.output


def test_accepting_the_rollback_is_on_the_record_and_lets_the_vault_start(
    restored: Runtime, settings: Settings, cli_env: None
) -> None:
    result = CliRunner().invoke(cli.main, ["audit", "accept-rollback", "--yes"])

    assert result.exit_code == 0, result.output
    assert "held a head of 5 entries; the log had 3" in result.output
    with unit_of_work(restored.engine) as session:
        last = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc())).first()
    assert last is not None and last.seq == 4 and last.action == "audit.rollback_accepted"
    assert json.loads(last.details) == {"witnessed_size": 5, "log_size": 3}
    _start(settings, restored)


def test_there_is_nothing_to_accept_without_a_rollback(
    runtime: Runtime, clock: FrozenClock, cli_env: None
) -> None:
    _events(runtime, clock, 2)
    sign_once(runtime)
    result = CliRunner().invoke(cli.main, ["audit", "accept-rollback", "--yes"])
    assert result.exit_code == 1
    assert "Nothing to accept" in result.output
