"""The Litestar adapter for authlib, tested directly: parameters, headers, iss, transport."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from authlib.oauth2.rfc6749 import InsecureTransportError
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.app import create_app
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.server import VaultPayload, VaultRequest
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import Browser
from tests.oauth.flows import Company, get_code, redeem


def test_the_payload_keeps_every_value_of_a_repeated_parameter() -> None:
    payload = VaultPayload([("scope", "a"), ("scope", "b"), ("state", "x")])
    assert payload.datalist["scope"] == ["a", "b"]
    assert payload.data["scope"] == "a"


def test_an_empty_parameter_counts_as_absent() -> None:
    payload = VaultPayload([("state", ""), ("client_id", "c1")])
    assert "state" not in payload.data
    assert payload.client_id == "c1"


def test_a_plain_http_uri_outside_loopback_is_refused_by_authlib() -> None:
    with pytest.raises(InsecureTransportError):
        VaultRequest(method="POST", uri="http://vault.example/oauth/token", headers={},
                     params=[])


def test_behind_a_tls_proxy_the_issuer_url_is_used_not_the_plain_http_hop(
    settings: Settings, runtime: Runtime, db_session: Session,
) -> None:
    proxied = settings.model_copy(update={"base_url": "https://vault.example"})
    runtime.settings = proxied
    app: Litestar = create_app(proxied, runtime=runtime)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        meta = client.get("/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == "https://vault.example"
        response = client.post("/oauth/token", data={"grant_type": "authorization_code",
                                                     "code": "x", "client_id": "nobody"})
        assert response.json()["error"] == "invalid_client"


def test_authorization_header_is_read_case_insensitively(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    raw = f"{company.client_id}:{company.secret}".encode()
    response = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": "https://shop.example/cb"},
        headers={"authorization": "Basic " + base64.b64encode(raw).decode()})
    assert response.status_code == 200, response.text


def test_url_encoded_credentials_in_basic_auth_work(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    raw = f"{quote(company.client_id, safe='')}:{quote(company.secret or '', safe='')}"
    response = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": "https://shop.example/cb"},
        headers={"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()})
    assert response.status_code == 200, response.text


def test_credentials_in_both_header_and_body_are_refused(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    response = redeem(client, company, code, verifier, client_id=company.client_id,
                      client_secret=company.secret or "")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_repeated_token_parameter_is_refused(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    response = client.post(
        "/oauth/token",
        content=f"grant_type=authorization_code&code={code}&code=other&code_verifier={verifier}",
        headers={**company.auth(), "Content-Type": "application/x-www-form-urlencoded"})
    assert response.json()["error"] == "invalid_request"
    assert "code" in response.json()["error_description"]


def test_every_authorization_response_carries_iss(
    browser: Browser, company: Company
) -> None:
    from tests.oauth.flows import authorize_query, consent, pkce_pair, redirect_params

    _, challenge = pkce_pair()
    for decision in ("approve", "deny"):
        response = consent(browser, authorize_query(company, challenge=challenge),
                           decision=decision)
        assert redirect_params(response)["iss"] == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("uri", "public", "problem"),
    [
        ("https://shop.example/cb", False, None),
        ("http://shop.example/cb", False, "must be https"),
        ("http://127.0.0.1/cb", False, "plain http"),
        ("http://127.0.0.1/cb", True, None),
        ("com.example.app:/cb", True, None),
        ("myapp:/cb", True, "must be https"),
        ("https://shop.example/cb#frag", False, "fragment"),
        ("https://user@shop.example/cb", False, "user-info"),
        ('https://shop.example/cb"', False, "may not contain"),
        ("https://shop.example/cb\\x", False, "may not contain"),
    ],
)
def test_registration_accepts_only_safe_redirect_uris(uri: str, public: bool,
                                                      problem: str | None) -> None:
    why = oauth_service.check_redirect_uri(uri, public=public)
    assert (why is None) if problem is None else (problem in (why or ""))


def test_a_native_app_may_use_any_loopback_port_and_nothing_else_varies() -> None:
    registered = "http://127.0.0.1/cb"
    assert oauth_service.redirect_uri_matches(registered, "http://127.0.0.1:53121/cb",
                                              public=True)
    assert not oauth_service.redirect_uri_matches(registered, "http://127.0.0.1:53121/other",
                                                  public=True)
    assert not oauth_service.redirect_uri_matches(registered, "http://localhost:53121/cb",
                                                  public=True)
    assert not oauth_service.redirect_uri_matches(registered, "http://127.0.0.1:53121/cb",
                                                  public=False)
