"""/oauth/authorize: what it refuses, and how (checklist sections A, B, I, J)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault import cli
from cmr_vault.audit.models import AuditEntry
from cmr_vault.oauth.models import AuthorizationCode
from cmr_vault.runtime import Runtime
from tests.factories import Browser, make_customer
from tests.oauth.flows import (
    REDIRECT_URI,
    Company,
    authorize_query,
    consent,
    pkce_pair,
    redirect_params,
)

ISSUER = "http://127.0.0.1:8000"
BAD_REDIRECTS = [
    "https://shop.example/cb/",
    "https://SHOP.example/cb",
    "https://shop.example/CB",
    "https://shop.example/cb?x=1",
    "https://shop.example/cb#x",
    "https://shop.example/%2Fcb",
    "https://shop.example@evil.test/cb",
    "https://evil.shop.example/cb",
    "https://shop.example.evil.test/cb",
    "https://shop.example/cb/../x",
    "http://shop.example/cb",
    "https://shop.example:8443/cb",
    " https://shop.example/cb",
    "https://shop.example/cb\r\n",
    "https://shоp.example/cb",  # Cyrillic o
]


def _no_code_issued(session: Session) -> bool:
    session.rollback()
    return session.exec(select(AuthorizationCode)).first() is None


@pytest.mark.parametrize("redirect_uri", BAD_REDIRECTS)
def test_a_redirect_uri_that_is_not_exactly_registered_gets_an_error_page_not_a_redirect(
    browser: Browser, company: Company, db_session: Session, redirect_uri: str
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, redirect_uri=redirect_uri)
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not valid" in response.text
    assert _no_code_issued(db_session)


@pytest.mark.parametrize("client_id", ["unknown-company", None])
def test_an_unknown_client_gets_an_error_page(
    browser: Browser, company: Company, client_id: str | None
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, client_id=client_id)
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize("response_type", ["token", "foo", "code id_token"])
def test_other_response_types_never_redirect_to_an_unregistered_uri(
    browser: Browser, company: Company, response_type: str
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, response_type=response_type,
                            redirect_uri="https://evil.test")
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_the_implicit_flow_is_refused_without_any_token(
    browser: Browser, company: Company
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, response_type="token")
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    params = redirect_params(response)
    assert params["error"] == "unsupported_response_type"
    assert "access_token" not in response.headers["location"]
    assert "#" not in response.headers["location"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "profile.phone:read"}, "invalid_scope"),
        ({"scope": "profile.nonsense:read"}, "invalid_scope"),
    ],
)
def test_bad_requests_from_a_known_client_are_redirected_back_with_error_state_and_iss(
    browser: Browser, company: Company, overrides: dict[str, str | None], expected: str
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, **overrides)
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    params = redirect_params(response)
    assert params["error"] == expected
    assert params["state"] == "st-123"
    assert params["iss"] == ISSUER


@pytest.mark.parametrize("char", ['"', "\\"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_quote_or_backslash_in_the_redirect_uri_gets_an_error_page_not_a_500(
    browser: Browser, company: Company, db_session: Session, char: str, method: str
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, redirect_uri=REDIRECT_URI + char)
    token = browser.csrf_token(f"/oauth/authorize?{authorize_query(company, challenge=challenge)}")
    response = browser.client.request(method, f"/oauth/authorize?{query}",
                                      data={"_csrf_token": token, "decision": "approve"}
                                      if method == "POST" else None, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not valid" in response.text
    assert _no_code_issued(db_session)


@pytest.mark.parametrize(("parameter", "value", "expected"), [
    ("scope", 'profile.email:read"', "invalid_scope"),
    ("scope", "profile.email:read\\", "invalid_scope"),
    ("scope", "profile.it's:read", "invalid_scope"),  # named back as "it's"
    ("response_type", 'code"', "unsupported_response_type"),
    ("response_type", "code\\", "unsupported_response_type"),
])
def test_a_quote_or_backslash_in_scope_or_response_type_is_sent_back_as_an_error(
    browser: Browser, company: Company, parameter: str, value: str, expected: str
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, **{parameter: value})
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    params = redirect_params(response)
    assert params["error"] == expected
    assert params["state"] == "st-123"
    assert not set(params.get("error_description", "")) & {'"', "\\"}


@pytest.mark.parametrize(
    "parameter", ["response_type", "client_id", "redirect_uri", "scope", "state",
                  "code_challenge", "code_challenge_method"],
)
def test_a_repeated_parameter_is_refused(
    browser: Browser, company: Company, parameter: str
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge)
    value = re.search(rf"(?:^|&){parameter}=([^&]*)", query)
    assert value
    response = browser.client.get(f"/oauth/authorize?{query}&{parameter}={value.group(1)}",
                                  follow_redirects=False)
    if response.status_code == 302:
        assert redirect_params(response)["error"] == "invalid_request"
    else:
        assert response.status_code == 400
        assert "location" not in response.headers


def test_signed_out_visitors_are_asked_to_sign_in_before_any_error_is_sent_back(
    client: TestClient[Litestar], company: Company
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge, scope="profile.phone:read")
    response = client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?next=")
    assert quote("/oauth/authorize", safe="") in response.headers["location"]


def test_the_consent_screen_names_the_company_each_item_and_its_purpose(
    browser: Browser, company: Company
) -> None:
    _, challenge = pkce_pair()
    page = browser.client.get(f"/oauth/authorize?{authorize_query(company, challenge=challenge)}")
    assert page.status_code == 200
    assert company.row.name in page.text
    assert "Read your e-mail" in page.text
    assert "Send your order receipts" in page.text
    assert "Send you e-mail" in page.text
    assert page.text.count('type="checkbox" name="scope"') == 3
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "access-control-allow-origin" not in page.headers
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text)
    assert set(external) == {company.row.homepage, company.row.privacy_policy_url}


def test_consent_without_the_csrf_token_is_refused_and_issues_no_code(
    browser: Browser, company: Company, db_session: Session
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge)
    browser.client.get(f"/oauth/authorize?{query}")
    response = browser.client.post(f"/oauth/authorize?{query}",
                                   data={"decision": "approve", "scope": "profile.email:read"},
                                   follow_redirects=False)
    assert response.status_code == 403
    assert "location" not in response.headers
    assert _no_code_issued(db_session)


@pytest.mark.parametrize("attacker_signed_in", [False, True])
def test_a_csrf_pair_from_another_browser_cannot_approve_for_the_signed_in_customer(
    browser: Browser, company: Company, other_client: TestClient[Litestar],
    db_session: Session, runtime: Runtime, attacker_signed_in: bool,
) -> None:
    attacker = Browser(other_client)
    if attacker_signed_in:
        make_customer(db_session, runtime, email="mallory@example.org")
        attacker.sign_in("mallory@example.org")
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge)
    attacker_token = attacker.csrf_token(f"/oauth/authorize?{query}" if attacker_signed_in
                                         else "/signin")
    assert browser.client.get(f"/oauth/authorize?{query}").status_code == 200
    browser.client.cookies.set("cmr_csrf", other_client.cookies["cmr_csrf"])
    response = browser.client.post(
        f"/oauth/authorize?{query}", follow_redirects=False,
        data={"_csrf_token": attacker_token, "decision": "approve",
              "scope": "profile.email:read", "expiry": "30d"})
    assert response.status_code == 403
    assert "location" not in response.headers
    assert _no_code_issued(db_session)


def test_approval_redirects_with_303_code_state_and_iss(
    browser: Browser, company: Company
) -> None:
    _, challenge = pkce_pair()
    response = consent(browser, authorize_query(company, challenge=challenge))
    assert response.status_code == 303
    params = redirect_params(response)
    assert set(params) == {"code", "state", "iss"}
    assert params["iss"] == ISSUER
    assert challenge not in response.headers["location"]


def test_denial_redirects_with_access_denied_and_is_audited(
    browser: Browser, company: Company, db_session: Session
) -> None:
    _, challenge = pkce_pair()
    response = consent(browser, authorize_query(company, challenge=challenge), decision="deny")
    params = redirect_params(response)
    assert params["error"] == "access_denied"
    assert params["iss"] == ISSUER
    db_session.rollback()
    actions = [e.action for e in db_session.exec(select(AuditEntry)).all()]
    assert "consent.denied" in actions


def test_choosing_nothing_shows_the_screen_again_without_a_code(
    browser: Browser, company: Company, db_session: Session
) -> None:
    _, challenge = pkce_pair()
    response = consent(browser, authorize_query(company, challenge=challenge), scopes=[])
    assert response.status_code == 400
    assert "Choose at least one" in response.text
    assert _no_code_issued(db_session)


def test_a_suspended_company_cannot_start_a_flow(
    browser: Browser, company: Company, cli_env: None
) -> None:
    result = CliRunner().invoke(cli.main, ["clients", "suspend", company.client_id])
    assert result.exit_code == 0, result.output
    _, challenge = pkce_pair()
    query = authorize_query(company, challenge=challenge)
    response = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
