"""The `cmr-vault` command: init, db upgrade, demo data."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from cmr_vault import cli
from cmr_vault.accounts import service as accounts_service
from cmr_vault.consent import service as consent_service
from cmr_vault.demo import DEMO_AUDITOR, DEMO_EMAIL, DEMO_PASSWORD, seed_demo_data
from cmr_vault.marketing import service as marketing_service
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, get_settings
from cmr_vault.vault import service as vault_service


@pytest.fixture
def fresh_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CMR_VAULT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CMR_VAULT_DATABASE_URL", raising=False)
    monkeypatch.delenv("CMR_VAULT_KEYSTORE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_init_creates_a_private_keyring_and_the_database(fresh_env: Path) -> None:
    result = CliRunner().invoke(cli.main, ["init"])
    assert result.exit_code == 0, result.output
    keyring = fresh_env / "keys" / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert (fresh_env / "cmr_vault.db").exists()
    again = CliRunner().invoke(cli.main, ["init"])
    assert "kept existing" in again.output


def test_db_upgrade_is_idempotent(fresh_env: Path) -> None:
    assert CliRunner().invoke(cli.main, ["db", "upgrade"]).exit_code == 0
    assert CliRunner().invoke(cli.main, ["db", "upgrade"]).exit_code == 0


def test_demo_data_gives_a_customer_who_can_sign_in(fresh_env: Path) -> None:
    settings = Settings(_env_file=None, data_dir=fresh_env)  # type: ignore[call-arg]
    cli.initialise(settings)
    runtime = Runtime.build(settings)
    for _ in range(2):
        with Session(runtime.engine) as session:
            seed_demo_data(session, runtime)
            session.commit()
    with Session(runtime.engine) as session:
        account = accounts_service.find_by_email(
            session, index_key=runtime.keyring.index_key, email=DEMO_EMAIL
        )
        assert account is not None
        assert accounts_service.password_matches(account, DEMO_PASSWORD)
        profile = vault_service.read_profile(session, cipher=runtime.cipher, account_id=account.id)
        assert profile.standard["given_name"] == "Dana"
        connections = consent_service.connections(session, account_id=account.id,
                                                  now=runtime.clock.now())
        assert [c.company.name for c in connections] == ["Velo Bike Shop"]
        inbox = marketing_service.inbox(session, cipher=runtime.cipher, account_id=account.id)
        assert [content["title"] for _, content, _ in inbox] == ["Spring service week"]
        auditor = accounts_service.find_by_email(
            session, index_key=runtime.keyring.index_key, email=DEMO_AUDITOR)
        assert auditor is not None and auditor.role == "auditor"
    runtime.dispose()


def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cmr_vault", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("init", "serve", "demo", "db", "keys", "audit", "clients", "auditors",
                    "policy", "admin-token"):
        assert command in result.stdout
