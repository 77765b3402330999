"""Canary values typed into the portal appear in no byte the vault writes down."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import make_url
from sqlmodel import Session, select

from cmr_vault import cli
from cmr_vault.audit.models import AuditEntry
from cmr_vault.db.engine import make_engine
from cmr_vault.db.migrate import alembic_config
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import Browser

CANARY_EMAIL = "canary-7f3e9d@example.org"
CANARIES = {
    "given_name": "Zyxwvutsrq",
    "family_name": "Canaryfamily",
    "phone": "+49 111 9876543",
    "street_address": "Kanarienweg 77",
    "custom": "canaryfieldname: Qwertzuiopcanary",
    "interests": "canarytopicxyz",
    "identities": "github: canaryhandle42",
}


@pytest.fixture
def written(client: TestClient[Litestar], caplog: pytest.LogCaptureFixture) -> str:
    """Sign up and fill the profile with canaries, capturing every log record."""
    caplog.set_level(logging.DEBUG)
    browser = Browser(client)
    browser.sign_up(CANARY_EMAIL)
    assert browser.submit("/profile", {"email": CANARY_EMAIL, **CANARIES}).status_code == 303
    assert "Zyxwvutsrq" in client.get("/profile").text
    browser.submit("/export", {"password": "correct horse battery"})
    return caplog.text


def _needles() -> list[bytes]:
    plain = [
        CANARY_EMAIL,
        "Zyxwvutsrq",
        "Canaryfamily",
        "9876543",
        "Kanarienweg",
        "Qwertzuiopcanary",
        "canaryfieldname",
        "canarytopicxyz",
        "canaryhandle42",
    ]
    return [p.encode() for p in plain] + [p.encode("utf-16-le") for p in plain]


def _database_bytes(settings: Settings, tmp_path: Path) -> bytes:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        files = Path(url.database or "").parent.glob("*.db*")
        return b"".join(f.read_bytes() for f in files)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    dump = tmp_path / "dump.sql"
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run([pg_dump, "--data-only", "-f", str(dump), libpq_url], check=True)
    return dump.read_bytes()


def test_canaries_are_not_in_the_database_files(
    written: str, settings: Settings, tmp_path: Path
) -> None:
    data = _database_bytes(settings, tmp_path)
    data += b"".join(p.read_bytes() for p in (settings.data_dir / "keys").glob("*"))
    for needle in _needles():
        assert needle not in data


def test_canaries_are_not_in_the_application_log(written: str) -> None:
    for needle in _needles():
        assert needle.decode("utf-8", "ignore") not in written


def test_canaries_are_not_in_the_audit_table(written: str, db_session: Session) -> None:
    entries = db_session.exec(select(AuditEntry)).all()
    assert {e.action for e in entries} >= {"account.created", "profile.updated", "profile.exported"}
    text = "\n".join(e.model_dump_json() for e in entries).encode()
    for needle in _needles():
        assert needle not in text


def test_two_customers_equal_custom_field_names_do_not_match_in_the_audit_log(
    client: TestClient[Litestar], other_client: TestClient[Litestar], db_session: Session
) -> None:
    for browser in (Browser(client), Browser(other_client)):
        browser.sign_up()
        browser.submit("/profile", {"custom": "diagnosis: private"})

    updates = db_session.exec(select(AuditEntry).where(
        AuditEntry.action == "profile.updated")).all()

    logged = [json.loads(entry.details)["fields"] for entry in updates]
    assert len(logged) == 2 and logged[0] != logged[1]
    assert all(name.startswith("custom:") for fields in logged for name in fields)


@pytest.mark.usefixtures("cli_env")
def test_db_upgrade_seals_the_custom_field_names_an_older_database_holds(
    client: TestClient[Litestar], runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    browser = Browser(client)
    browser.sign_up()
    browser.submit("/profile", {"custom": "canaryfieldname: Qwertzuiopcanary"})
    engine = make_engine(settings.database_url, immediate=False)
    runtime.engine.dispose()
    command.downgrade(alembic_config(engine, runtime.cipher), "0008_rate_hits")
    engine.dispose()
    assert b"canaryfieldname" in _database_bytes(settings, tmp_path)

    result = CliRunner().invoke(cli.main, ["db", "upgrade"])

    assert result.exit_code == 0, result.output
    assert "canaryfieldname: Qwertzuiopcanary" in client.get("/profile").text
    runtime.engine.dispose()
    assert b"canaryfieldname" not in _database_bytes(settings, tmp_path)


@pytest.mark.usefixtures("cli_env")
def test_db_upgrade_without_the_keyring_refuses_and_changes_nothing(
    client: TestClient[Litestar], runtime: Runtime, settings: Settings
) -> None:
    browser = Browser(client)
    browser.sign_up()
    browser.submit("/profile", {"custom": "canaryfieldname: Qwertzuiopcanary"})
    engine = make_engine(settings.database_url, immediate=False)
    runtime.engine.dispose()
    command.downgrade(alembic_config(engine, runtime.cipher), "0008_rate_hits")
    engine.dispose()
    keyring = settings.resolved_key_file
    keyring.rename(keyring.with_suffix(".away"))

    refused = CliRunner().invoke(cli.main, ["db", "upgrade"])

    assert refused.exit_code == 1
    assert "no keyring was found" in refused.output
    keyring.with_suffix(".away").rename(keyring)
    assert CliRunner().invoke(cli.main, ["db", "upgrade"]).exit_code == 0
    assert "canaryfieldname: Qwertzuiopcanary" in client.get("/profile").text
