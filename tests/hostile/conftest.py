"""The API under fuzzing: a company with a customer's grant, a second company, an auditor and
the operator, each with the credentials its part of the API takes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Role
from cmr_vault.app import create_app
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import DEFAULT_PASSWORD, Browser, make_customer
from tests.oauth.flows import Company, get_code, redeem, register_company

ADMIN_TOKEN = "operator-token-for-the-fuzzer-0123456789"
NOTICE = {"profile.email:read": ["Send your order receipts"],
          "marketing.inbox": ["Tell you about sales"],
          "intents.bikes": ["Answer what you are looking for"],
          "programmes.feedback": ["Ask for your feedback"]}


@dataclass
class Credentials:
    """Headers for each kind of caller."""

    company: Company
    other: Company
    bearer: str
    other_bearer: str
    subject: str
    auditor_session: str

    def for_path(self, path: str, *, other: bool = False) -> dict[str, str]:
        """The credentials this part of the API takes, as company A (or B)."""
        company = self.other if other else self.company
        bearer = self.other_bearer if other else self.bearer
        if path.startswith("/api/v1/admin"):
            return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if path.startswith("/api/v1/auditor"):
            return {"Cookie": f"cmr_session={self.auditor_session}"}
        if path.startswith(("/api/v1/pushes", "/api/v1/consent-check", "/api/v1/subjects")):
            return {"Authorization": f"Bearer {bearer}"}
        if path.startswith(("/api/v1/audit/", "/api/v1/receipts", "/.well-known")):
            return {}
        return company.auth()


@pytest.fixture
def fuzz_app(settings: Settings, runtime: Runtime) -> Litestar:
    runtime.settings = settings.model_copy(update={
        "admin_token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()})
    return create_app(runtime.settings, runtime=runtime)


@pytest.fixture
def fuzz_client(fuzz_app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(fuzz_app, base_url="http://127.0.0.1:8000") as client:
        yield client


def _connected(client: TestClient[Litestar], company: Company, email: str) -> tuple[str, str]:
    browser = Browser(client)
    assert browser.sign_in(email).status_code == 303
    code, verifier = get_code(browser, company, scopes=list(NOTICE), scope=" ".join(NOTICE))
    token = str(redeem(client, company, code, verifier).json()["access_token"])
    client.cookies.clear()
    grants = client.get("/api/v1/grants", headers=company.auth()).json()["grants"]
    return token, str(grants[0]["subject"])


@pytest.fixture
def credentials(fuzz_client: TestClient[Litestar], db_session: Session,
                runtime: Runtime) -> Credentials:
    company = register_company(db_session, runtime, name="Fuzz Shop A", notice=NOTICE)
    other = register_company(db_session, runtime, name="Fuzz Shop B", notice=NOTICE)
    make_customer(db_session, runtime, email="ada@example.org",
                  profile={"email": "ada@example.org", "given_name": "Ada"})
    make_customer(db_session, runtime, email="bo@example.org", profile={"email": "bo@example.org"})
    keyring = runtime.keyring
    accounts_service.create_account(
        db_session, index_key=keyring.index_key, data_keys=runtime.data_keys,
        clock=runtime.clock, role=Role.AUDITOR, email="auditor@example.org",
        password=DEFAULT_PASSWORD)
    db_session.commit()
    bearer, subject = _connected(fuzz_client, company, "ada@example.org")
    other_bearer, _ = _connected(fuzz_client, other, "bo@example.org")
    auditor = Browser(fuzz_client)
    assert auditor.sign_in("auditor@example.org").status_code == 303
    session = str(fuzz_client.cookies["cmr_session"])
    fuzz_client.cookies.clear()
    return Credentials(company, other, bearer, other_bearer, subject, session)
