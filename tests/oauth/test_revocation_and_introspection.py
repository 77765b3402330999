"""RFC 7009 revocation, RFC 7662 introspection and RFC 8414 metadata (checklist F, G, I)."""

from __future__ import annotations

from typing import Any

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9207 import AuthorizationServerMetadata as IssuerMetadata
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.oauth.flows import Company, get_code, introspect, redeem, refresh, register_company


@pytest.fixture
def tokens(browser: Browser, client: TestClient[Litestar], company: Company) -> dict[str, Any]:
    code, verifier = get_code(browser, company)
    return dict(redeem(client, company, code, verifier).json())


def _revoke(client: TestClient[Litestar], company: Company, token: str, **extra: str) -> Any:
    return client.post("/oauth/revoke", data={"token": token, **company.form(), **extra},
                       headers=company.auth())


def test_revoking_the_refresh_token_kills_the_access_token_too(
    client: TestClient[Litestar], company: Company, tokens: dict[str, Any]
) -> None:
    assert _revoke(client, company, tokens["refresh_token"]).status_code == 200
    assert introspect(client, company, tokens["access_token"]) == {"active": False}
    assert refresh(client, company, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_with_a_wrong_hint_still_revokes(
    client: TestClient[Litestar], company: Company, tokens: dict[str, Any]
) -> None:
    response = _revoke(client, company, tokens["refresh_token"], token_type_hint="access_token")
    assert response.status_code == 200
    assert introspect(client, company, tokens["access_token"]) == {"active": False}


def test_revoking_an_unknown_token_answers_200_and_says_nothing(
    client: TestClient[Litestar], company: Company
) -> None:
    response = _revoke(client, company, "not-a-token")
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize("hint", ["id_token", "nonsense"])
def test_an_unknown_hint_is_ignored_and_the_token_is_still_revoked(
    client: TestClient[Litestar], company: Company, tokens: dict[str, Any], hint: str
) -> None:
    response = _revoke(client, company, tokens["access_token"], token_type_hint=hint)
    assert response.status_code == 200
    assert response.json() == {}
    assert introspect(client, company, tokens["refresh_token"]) == {"active": False}


def test_introspection_ignores_an_unknown_hint(
    client: TestClient[Litestar], company: Company, tokens: dict[str, Any]
) -> None:
    response = client.post("/oauth/introspect", headers=company.auth(),
                           data={"token": tokens["access_token"], "token_type_hint": "id_token"})
    assert response.status_code == 200
    assert response.json()["active"] is True


def test_revocation_needs_client_authentication(
    client: TestClient[Litestar], tokens: dict[str, Any]
) -> None:
    response = client.post("/oauth/revoke", data={"token": tokens["access_token"]})
    assert response.json()["error"] == "invalid_client"


def test_another_company_cannot_revoke_or_introspect_the_token(
    client: TestClient[Litestar], company: Company, tokens: dict[str, Any],
    db_session: Session, runtime: Runtime,
) -> None:
    other = register_company(db_session, runtime)
    unknown = _revoke(client, other, "not-a-token")
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = _revoke(client, other, token)
        assert (answer.status_code, answer.json()) == (unknown.status_code, unknown.json())
        assert introspect(client, other, token) == {"active": False}
    assert introspect(client, company, tokens["access_token"])["active"] is True
    assert introspect(client, company, tokens["refresh_token"])["active"] is True



def test_introspection_needs_client_authentication(
    client: TestClient[Litestar], tokens: dict[str, Any]
) -> None:
    response = client.post("/oauth/introspect", data={"token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("token", ["", "garbage", "x" * 500])
def test_introspecting_a_bad_token_says_only_inactive(
    client: TestClient[Litestar], company: Company, token: str
) -> None:
    response = client.post("/oauth/introspect", data={"token": token}, headers=company.auth())
    if token:
        assert response.json() == {"active": False}
    else:
        assert response.json()["error"] == "invalid_request"


def test_an_active_token_is_described_with_pairwise_subject_and_no_store(
    client: TestClient[Litestar], company: Company, tokens: dict[str, Any]
) -> None:
    response = client.post("/oauth/introspect", data={"token": tokens["access_token"]},
                           headers=company.auth())
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert {"active", "scope", "client_id", "exp", "sub", "aud"} <= set(body)
    assert body["client_id"] == company.client_id
    refresh_body = introspect(client, company, tokens["refresh_token"])
    assert refresh_body["active"] is True


def test_metadata_advertises_only_what_is_supported(client: TestClient[Litestar]) -> None:
    body = client.get("/.well-known/oauth-authorization-server").json()
    metadata = AuthorizationServerMetadata(body)
    metadata.validate(metadata_classes=[IssuerMetadata])
    assert body["issuer"] == "http://127.0.0.1:8000"
    assert body["response_types_supported"] == ["code"]
    assert set(body["grant_types_supported"]) <= {"authorization_code", "refresh_token"}
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert "password" not in body["grant_types_supported"]
