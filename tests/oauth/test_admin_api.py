"""The operator's admin API for companies, behind a hashed operator token."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from cmr_vault.app import create_app
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings

TOKEN = "operator-token-for-tests-0123456789"
COMPANY = {
    "name": "Bakery", "description": "Bread.", "homepage": "https://bakery.example",
    "privacy_policy_url": "https://bakery.example/privacy",
    "redirect_uris": ["https://bakery.example/cb"],
    "notice": {"profile.email:read": ["Order confirmations"]},
}


@pytest.fixture
def admin(settings: Settings, runtime: Runtime) -> Iterator[TestClient[Litestar]]:
    configured = settings.model_copy(
        update={"admin_token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()})
    runtime.settings = configured
    with TestClient(create_app(configured, runtime=runtime),
                    base_url="http://127.0.0.1:8000") as client:
        yield client


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_operator_registers_lists_and_suspends_a_company(
    admin: TestClient[Litestar],
) -> None:
    created = admin.post("/api/v1/admin/clients", json=COMPANY, headers=_auth())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["client_secret"] and body["status"] == "approved"
    listed = admin.get("/api/v1/admin/clients", headers=_auth()).json()["clients"]
    assert [c["name"] for c in listed] == ["Bakery"]
    assert "client_secret" not in listed[0] and "secret_hash" not in listed[0]
    suspended = admin.post(f"/api/v1/admin/clients/{body['client_id']}/status",
                           json={"status": "suspended"}, headers=_auth())
    assert suspended.json()["status"] == "suspended"


def test_a_wrong_token_is_refused(admin: TestClient[Litestar]) -> None:
    response = admin.get("/api/v1/admin/clients", headers=_auth("guess"))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_an_invalid_registration_is_a_problem_naming_each_field(
    admin: TestClient[Litestar],
) -> None:
    bad = {**COMPANY, "redirect_uris": ["http://evil.example/cb"], "homepage": "ftp://x",
           "notice": {"profile.password:read": ["x"]}}
    response = admin.post("/api/v1/admin/clients", json=bad, headers=_auth())
    assert response.status_code == 400
    errors = {e["key"]: e["message"] for e in response.json()["errors"]}
    assert errors["homepage"].startswith("must be an https URL")
    assert errors["redirect_uris.0"].startswith("must be an https URL")
    assert errors["notice.profile.password:read.[key]"].startswith("must be a scope")


def test_a_confidential_client_may_not_come_back_over_plain_http(
    admin: TestClient[Litestar],
) -> None:
    loopback = {**COMPANY, "redirect_uris": ["http://127.0.0.1:8080/cb"]}
    refused = admin.post("/api/v1/admin/clients", json=loopback, headers=_auth())
    assert refused.status_code == 400
    assert "confidential client" in str(refused.json()["errors"])
    native = admin.post("/api/v1/admin/clients", json={**loopback, "public": True},
                        headers=_auth())
    assert native.status_code == 201


def test_without_a_configured_token_the_admin_api_is_off(client: TestClient[Litestar]) -> None:
    assert client.get("/api/v1/admin/clients", headers=_auth()).status_code == 403
