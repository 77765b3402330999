"""schemathesis' own command line against a live vault, every phase and every check
(checklist S1, S3, S4): examples, coverage, fuzzing and the stateful phase that follows the
document's links (create -> read -> delete -> read), on SQLite and on PostgreSQL.

The credentials go in through `[auth.openapi.<scheme>]`, so schemathesis knows which of them
each operation declares: `ignored_auth` then checks that every operation refuses a request
without them and with wrong ones. The tenant check of tests/hostile/schemathesis_hooks.py
replays company A's successes as company B. The run must report no failure at all.

The form-encoded OAuth endpoints, which the main document leaves to their RFCs, are fuzzed from
docs/oauth-endpoints.openapi.yaml: never a 500, every refusal an RFC 6749 error object, every
answer `Cache-Control: no-store` (the `oauth_answers` hook).

Reproduce by hand: the test prints the command line and keeps its config in its tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Role
from cmr_vault.consent.models import Grant, GrantStatus
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import reads_real_time
from tests.factories import DEFAULT_PASSWORD, Browser, make_customer
from tests.hostile.conftest import ADMIN_TOKEN, NOTICE
from tests.load.harness import Customer, VaultProcess, free_port, opt_in, vault_env
from tests.oauth.flows import Company, get_code, introspect, redeem, register_company

ROOT = Path(__file__).resolve().parents[2]
MACHINE_API = r"^/(api/|\.well-known/|health$)"
EXAMPLES = int(os.environ.get("CMR_VAULT_FUZZ_EXAMPLES", "12"))


@dataclass
class LiveApi:
    """A running vault and every caller's credentials."""

    vault: VaultProcess
    a: Customer
    b: Customer
    auditor_session: str


def _connect(base_url: str, email: str, company: Company) -> Customer:
    browser = Browser(httpx.Client(base_url=base_url, timeout=30))  # type: ignore[arg-type]
    assert browser.sign_in(email).status_code == 303
    code, verifier = get_code(browser, company, scopes=list(NOTICE), scope=" ".join(NOTICE))
    client: httpx.Client = browser.client  # type: ignore[assignment]
    tokens = redeem(client, company, code, verifier).json()  # type: ignore[arg-type]
    subject = introspect(client, company, tokens["access_token"])["sub"]  # type: ignore[arg-type]
    return Customer(email, company, browser, tokens["access_token"], subject)


@pytest.fixture
@reads_real_time
def live_api(settings: Settings, runtime: Runtime, db_session: Session,
             tmp_path: Path, database_url: str) -> Iterator[LiveApi]:
    shops = [register_company(db_session, runtime, name=f"Fuzz Shop {n}", notice=NOTICE)
             for n in "AB"]
    for shop in shops:
        db_session.refresh(shop.row)
        db_session.expunge(shop.row)
    for email in ("ada@example.org", "bo@example.org"):
        make_customer(db_session, runtime, email=email, profile={"email": email})
    accounts_service.create_account(
        db_session, index_key=runtime.keyring.index_key, data_keys=runtime.data_keys,
        clock=runtime.clock, role=Role.AUDITOR, email="auditor@example.org",
        password=DEFAULT_PASSWORD)
    db_session.commit()
    port = free_port()
    env = vault_env(settings, f"http://127.0.0.1:{port}")
    env["CMR_VAULT_ADMIN_TOKEN_SHA256"] = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
    vault = VaultProcess(env, port, workers=2 if database_url.startswith("postgresql") else 1,
                         log=tmp_path / "vault.log")
    vault.start()
    try:
        a = _connect(vault.base_url, "ada@example.org", shops[0])
        b = _connect(vault.base_url, "bo@example.org", shops[1])
        opt_in(runtime, [a, b])
        auditor = Browser(httpx.Client(base_url=vault.base_url))  # type: ignore[arg-type]
        assert auditor.sign_in("auditor@example.org").status_code == 303
        yield LiveApi(vault, a, b, str(auditor.client.cookies["cmr_session"]))
    finally:
        vault.stop()


def _config(api: LiveApi) -> str:
    """schemathesis.toml: each security scheme of the document with its credentials."""
    a = api.a.company
    return "\n".join([
        f'base-url = "{api.vault.base_url}"',
        "[generation]",
        f"max-examples = {EXAMPLES}",
        'database = "none"',
        # The vault refuses text no database can store (NUL) with a documented 400.
        "allow-x00 = false",
        # Long enough scenarios to walk list -> read -> relinquish -> read again.
        "[phases.stateful.generation]",
        f"max-examples = {EXAMPLES * 5}",
        "[auth.openapi.companyClient]",
        f'username = "{a.client_id}"',
        f'password = "{a.secret}"',
        "[auth.openapi.accessToken]",
        f'bearer = "{api.a.token}"',
        "[auth.openapi.operatorToken]",
        f'bearer = "{ADMIN_TOKEN}"',
        "[auth.openapi.auditorSession]",
        f'api_key = "{api.auditor_session}"',
    ]) + "\n"


def test_schemathesis_finds_no_failure_in_any_phase_or_check(
        live_api: LiveApi, tmp_path: Path, db_session: Session) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(live_api))
    b = live_api.b
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.hostile.schemathesis_hooks",
           "PYTHONPATH": str(ROOT), "CMR_VAULT_FUZZ_B_TOKEN": b.token,
           "CMR_VAULT_FUZZ_B_CLIENT_ID": b.company.client_id,
           "CMR_VAULT_FUZZ_B_SECRET": str(b.company.secret),
           "CMR_VAULT_FUZZ_A_MARKERS": json.dumps({
               "client id": live_api.a.company.client_id, "pseudonym": live_api.a.subject,
               "e-mail": live_api.a.email})}
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
               f"{live_api.vault.base_url}/schema/openapi.json", "--include-path-regex",
               MACHINE_API, "--phases", "examples,coverage,fuzzing,stateful",
               "--checks", "all", "--generation-deterministic", "--no-color",
               "--report", "junit", "--report-dir", str(tmp_path / "report")]
    print(" ".join(command))
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=1200, check=False)
    print(run.stdout[-20000:], run.stderr[-5000:])
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, f"the {phase} phase did not run and pass"
    # The stateful phase followed the links far enough to give a grant up (DELETE answered 200)
    # and read it again: that is where `use_after_free` looks for a 404. The server writes no
    # access log (it would hold addresses and paths), so the database says so.
    db_session.rollback()
    statuses = db_session.exec(select(Grant.status)).all()
    assert GrantStatus.RELINQUISHED in statuses, statuses


def test_the_oauth_form_endpoints_answer_only_rfc_errors_and_never_cache(
        live_api: LiveApi, tmp_path: Path) -> None:
    a = live_api.a.company
    config = tmp_path / "schemathesis-oauth.toml"
    config.write_text("\n".join([
        f'base-url = "{live_api.vault.base_url}"', "[generation]",
        f"max-examples = {EXAMPLES * 3}", 'database = "none"', "allow-x00 = false",
        "[auth.openapi.clientSecretBasic]", f'username = "{a.client_id}"',
        f'password = "{a.secret}"']) + "\n")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.hostile.schemathesis_hooks",
           "PYTHONPATH": str(ROOT)}
    # Positive data is left out: a schema-valid code is still not a code the vault issued.
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
               str(ROOT / "docs" / "oauth-endpoints.openapi.yaml"), "--url",
               live_api.vault.base_url, "--phases", "examples,coverage,fuzzing",
               "--checks", "all", "--exclude-checks", "positive_data_acceptance",
               "--generation-deterministic", "--no-color"]
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, check=False)
    print(run.stdout[-8000:], run.stderr[-3000:])
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    for phase in ("Coverage", "Fuzzing"):
        assert f"✅ {phase}" in run.stdout, f"the {phase} phase did not run and pass"
