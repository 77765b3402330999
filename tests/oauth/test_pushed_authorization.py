"""RFC 9126 Pushed Authorization Requests: the company sends its request to the vault first,
and the customer's browser carries only a single-use, short-lived `request_uri` (checklist L1,
L2)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from tests.conftest import FrozenClock
from tests.factories import Browser
from tests.oauth.flows import (
    REDIRECT_URI,
    SCOPES,
    Company,
    consent,
    pkce_pair,
    redeem,
    redirect_params,
    register_company,
)


def push(client: TestClient[Litestar], company: Company, challenge: str, **overrides: Any) -> Any:
    """POST an authorization request to the PAR endpoint, authenticated as `company`."""
    params: dict[str, Any] = {
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": " ".join(SCOPES),
        "state": "st-par",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **company.form(),
    }
    params.update(overrides)
    return client.post(
        "/oauth/par",
        data={k: v for k, v in params.items() if v is not None},
        headers=company.auth(),
    )


def by_reference(company: Company, request_uri: str) -> str:
    return urlencode({"client_id": company.client_id, "request_uri": request_uri})


def test_a_pushed_request_gets_a_short_lived_request_uri(
    client: TestClient[Litestar], company: Company
) -> None:
    response = push(client, company, pkce_pair()[1])
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert 60 <= body["expires_in"] <= 600


def test_the_customer_consents_to_a_pushed_request_and_the_company_gets_tokens(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    verifier, challenge = pkce_pair()
    request_uri = push(client, company, challenge).json()["request_uri"]
    answer = consent(browser, by_reference(company, request_uri), scopes=["profile.email:read"])
    params = redirect_params(answer)
    assert params["state"] == "st-par"
    tokens = redeem(client, company, params["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "profile.email:read"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "profile.phone:read"}, "invalid_scope"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"request_uri": "urn:ietf:params:oauth:request_uri:abc"}, "invalid_request"),
    ],
    ids=["scope not registered", "unregistered redirect", "no PKCE", "request_uri pushed"],
)
def test_a_bad_pushed_request_is_refused_in_json(
    client: TestClient[Litestar], company: Company, overrides: dict[str, Any], error: str
) -> None:
    response = push(client, company, pkce_pair()[1], **overrides)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert "location" not in response.headers


def test_pushing_needs_the_company_secret(client: TestClient[Litestar], company: Company) -> None:
    response = client.post(
        "/oauth/par",
        data={
            "client_id": company.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "profile.email:read",
            "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_the_par_endpoint_takes_only_post(client: TestClient[Litestar]) -> None:
    assert client.get("/oauth/par").status_code == 405


def test_an_expired_request_uri_is_refused(
    browser: Browser, client: TestClient[Litestar], company: Company, clock: FrozenClock
) -> None:
    body = push(client, company, pkce_pair()[1]).json()
    clock.advance(seconds=body["expires_in"] + 1)
    page = browser.client.get(f"/oauth/authorize?{by_reference(company, body['request_uri'])}")
    assert page.status_code == 400
    assert "location" not in page.headers


def test_a_request_uri_is_refused_for_another_company(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    db_session: Session,
    runtime: Any,
) -> None:
    other = register_company(db_session, runtime)
    request_uri = push(client, company, pkce_pair()[1]).json()["request_uri"]
    page = browser.client.get(f"/oauth/authorize?{by_reference(other, request_uri)}")
    assert page.status_code == 400
    assert "location" not in page.headers


def test_a_company_that_must_push_cannot_send_its_request_in_the_url(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    company.row.require_par = True
    db_session.add(company.row)
    db_session.commit()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": company.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "profile.email:read",
            "state": "s",
            "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256",
        }
    )
    page = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert page.status_code == 302
    refused = redirect_params(page)
    assert refused["error"] == "invalid_request"
    assert "code" not in refused
    _, challenge = pkce_pair()
    request_uri = push(client, company, challenge).json()["request_uri"]
    answer = consent(browser, by_reference(company, request_uri))
    assert "code" in redirect_params(answer)


def test_the_server_metadata_names_the_par_endpoint(client: TestClient[Litestar]) -> None:
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["pushed_authorization_request_endpoint"].endswith("/oauth/par")
