"""The `cmr-vault` command: init, db upgrade, demo data."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault import cli
from cmr_vault.accounts import service as accounts_service
from cmr_vault.consent import service as consent_service
from cmr_vault.crypto.keyring import read_keyring, write_keyring
from cmr_vault.demo import DEMO_AUDITOR, DEMO_EMAIL, DEMO_PASSWORD, seed_demo_data
from cmr_vault.marketing import service as marketing_service
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, get_settings
from cmr_vault.vault import service as vault_service
from tests.load.harness import VaultProcess, free_port


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


PRIVATE = {"drwx------", "-rw-------"}


def _modes(data_dir: Path) -> dict[str, str]:
    """Every directory and file under the data directory with its mode, as `ls -l` shows it."""
    return {str(p.relative_to(data_dir.parent)): stat.filemode(p.stat().st_mode)
            for p in [data_dir, *data_dir.rglob("*")]}


def test_init_makes_the_data_directory_and_every_file_in_it_private(fresh_env: Path) -> None:
    assert CliRunner().invoke(cli.main, ["init"]).exit_code == 0

    modes = _modes(fresh_env)
    assert set(modes.values()) <= PRIVATE, modes
    assert {"var", "var/keys", "var/cmr_vault.db", "var/keys/keystore.db",
            "var/keys/keyring.json"} <= modes.keys()


@dataclass(frozen=True)
class Served:
    """A live `cmr-vault serve` on a free port, and the file its output goes to."""

    url: str
    log: Path


@pytest.fixture
def served(fresh_env: Path, tmp_path: Path) -> Iterator[Served]:
    assert CliRunner().invoke(cli.main, ["init"]).exit_code == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    vault = Served(f"http://127.0.0.1:{port}", tmp_path / "serve.log")
    with vault.log.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cmr_vault", "serve", "--port", str(port)],
            env={**os.environ, "CMR_VAULT_BASE_URL": vault.url},
            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{vault.url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, vault.log.read_text()
            time.sleep(0.1)
        yield vault
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_serving_vault_keeps_its_database_and_wal_files_private(
    served: Served, fresh_env: Path
) -> None:
    modes = _modes(fresh_env)

    assert {"var/cmr_vault.db-wal", "var/cmr_vault.db-shm"} <= modes.keys()
    assert set(modes.values()) <= PRIVATE, modes


def test_the_server_log_names_no_client_address_or_path(served: Served) -> None:
    assert httpx.get(f"{served.url}/signin", params={"next": "/profile"}).status_code == 200
    assert httpx.get(f"{served.url}/health").status_code == 200

    log = served.log.read_text()

    assert "Uvicorn running" in log
    assert "/signin" not in log and "GET /health" not in log


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


def _cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a newcomer's shell: a data directory and no public URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_VAULT_")}
    return {**env, "CMR_VAULT_DATA_DIR": str(data_dir), **extra}


def test_demo_on_another_port_is_its_own_issuer_and_its_log_exports_verifiably(
    fresh_env: Path, tmp_path: Path
) -> None:
    port = free_port()
    vault = VaultProcess(_cli_env(fresh_env, CMR_VAULT_CHECKPOINT_INTERVAL_SECONDS="0.2"), port,
                         workers=1, log=tmp_path / "demo.log", command="demo")
    vault.start()
    try:
        metadata = httpx.get(f"{vault.base_url}/.well-known/oauth-authorization-server").json()
        signed = _wait_for_checkpoint(vault.base_url)
    finally:
        vault.stop()
    assert metadata["issuer"] == f"http://127.0.0.1:{port}"
    assert signed.startswith(f"127.0.0.1:{port}/audit\n")
    assert f"Public URL: http://127.0.0.1:{port}/" in (tmp_path / "demo.log").read_text()

    # Later, a shell with no public URL set exports the log: it must verify itself.
    export = tmp_path / "log.jsonl"
    env = _cli_env(fresh_env)
    exported = subprocess.run([sys.executable, "-m", "cmr_vault", "audit", "export", str(export)],
                              env=env, capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    verified = subprocess.run(
        [sys.executable, "-m", "cmr_vault", "audit", "verify", "--export", str(export)],
        env=env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _wait_for_checkpoint(base_url: str) -> str:
    """The note of the first tree head the running vault signs (its signer runs every 0.2 s)."""
    for _ in range(300):
        answer = httpx.get(f"{base_url}/api/v1/audit/checkpoints/latest")
        if answer.status_code == 200:
            return str(answer.json()["note"])
        time.sleep(0.2)
    raise AssertionError("the vault signed no checkpoint within a minute")


def test_demo_on_a_taken_port_says_which_flag_to_use_and_prints_no_url(
    fresh_env: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "cmr_vault", "demo", "--port", str(port)],
                                env=_cli_env(fresh_env), capture_output=True, text=True,
                                timeout=120)
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"--port {port + 1}" in result.stderr
    assert "Open http" not in result.stdout


def test_keys_rotate_id_token_publishes_old_and_new_keys(
    cli_env: None, client: TestClient[Litestar],
) -> None:
    before = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    result = CliRunner().invoke(cli.main, ["keys", "rotate-id-token"])
    after = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert result.exit_code == 0, result.output
    assert before < after
    assert any(kid.endswith("-rs256") for kid in after - before)


def test_db_upgrade_gives_a_keyring_from_before_openid_connect_its_id_token_keys(
    cli_env: None, settings: Settings,
) -> None:
    key_file = settings.resolved_key_file
    write_keyring(key_file, read_keyring(key_file).with_id_token_keys(()))
    result = CliRunner().invoke(cli.main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert [g.rsa_pem is not None for g in read_keyring(key_file).id_token_keys] == [True]
