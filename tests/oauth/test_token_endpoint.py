"""/oauth/token: codes, PKCE, client authentication, refresh rotation (checklist B–E)."""

from __future__ import annotations

import base64
import json
import math
import threading
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant, GrantStatus
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import Browser
from tests.oauth.flows import (
    Company,
    get_code,
    introspect,
    redeem,
    refresh,
    register_company,
)


def _tokens(browser: Browser, client: TestClient[Litestar], company: Company) -> dict[str, Any]:
    code, verifier = get_code(browser, company)
    response = redeem(client, company, code, verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_wrong_code_verifier_is_invalid_grant(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, _ = get_code(browser, company)
    response = redeem(client, company, code, "x" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_missing_code_verifier_is_invalid_request(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, _ = get_code(browser, company)
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": "https://shop.example/cb"}
    response = client.post("/oauth/token", data=data, headers=company.auth())
    assert response.json()["error"] == "invalid_request"


def test_a_replayed_code_is_refused_and_revokes_what_the_first_use_issued(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    first = redeem(client, company, code, verifier).json()
    replay = redeem(client, company, code, verifier)
    assert replay.json()["error"] == "invalid_grant"
    assert introspect(client, company, first["access_token"]) == {"active": False}
    assert refresh(client, company, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_replay_with_a_wrong_verifier_leaves_the_first_tokens_alone(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    first = redeem(client, company, code, verifier).json()
    assert redeem(client, company, code, "y" * 50).json()["error"] == "invalid_grant"
    assert introspect(client, company, first["access_token"])["active"] is True


def test_of_many_concurrent_redemptions_exactly_one_wins(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    statuses: list[int] = []
    barrier = threading.Barrier(12)

    def attempt() -> None:
        barrier.wait()
        statuses.append(redeem(client, company, code, verifier).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [400] * 11


def test_a_code_expires_after_sixty_seconds(
    browser: Browser, client: TestClient[Litestar], company: Company, clock: FrozenClock
) -> None:
    code, verifier = get_code(browser, company)
    clock.advance(seconds=61)
    assert redeem(client, company, code, verifier).json()["error"] == "invalid_grant"


def test_another_company_cannot_redeem_the_code(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    runtime: Runtime,
) -> None:
    other = register_company(db_session, runtime)
    code, verifier = get_code(browser, company)
    response = redeem(client, other, code, verifier)
    assert response.json()["error"] == "invalid_grant"
    assert redeem(client, company, code, verifier).status_code == 200


def test_a_changed_redirect_uri_at_the_token_endpoint_is_invalid_grant(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    response = redeem(client, company, code, verifier, redirect_uri="https://shop.example/other")
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("secret", [None, "wrong-secret"])
def test_a_confidential_client_must_authenticate(
    browser: Browser, client: TestClient[Litestar], company: Company, secret: str | None
) -> None:
    code, verifier = get_code(browser, company)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": "https://shop.example/cb", "client_id": company.client_id}
    headers = {}
    if secret:
        raw = f"{company.client_id}:{secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    response = client.post("/oauth/token", data=data, headers=headers)
    assert response.status_code == 401 if secret else response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"
    if secret:
        assert response.headers["www-authenticate"].startswith("Basic")


def test_the_token_endpoint_takes_only_form_posts(client: TestClient[Litestar]) -> None:
    assert client.get("/oauth/token").status_code == 405
    response = client.post("/oauth/token", content=json.dumps({"grant_type": "x"}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"  # RFC 6749 §5.2, not a problem
    assert response.headers["cache-control"] == "no-store"


def test_a_form_that_is_not_utf8_is_an_invalid_request_not_a_crash(
    client: TestClient[Litestar],
) -> None:
    response = client.post("/oauth/revoke", content=b"token=\xff\xfe",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("grant_type", ["password", "client_credentials", "implicit"])
def test_unsupported_grant_types_are_refused(
    client: TestClient[Litestar], company: Company, grant_type: str
) -> None:
    response = client.post("/oauth/token", data={"grant_type": grant_type, "username": "a",
                                                 "password": "b"}, headers=company.auth())
    assert response.json()["error"] == "unsupported_grant_type"


def test_client_secrets_are_stored_only_as_hashes(company: Company, db_session: Session) -> None:
    assert company.secret is not None
    dump = json.dumps([row.model_dump(mode="json")
                       for row in db_session.exec(select(OAuthClient)).all()])
    assert company.secret not in dump


def test_tokens_and_codes_carry_at_least_128_bits(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    tokens = redeem(client, company, code, verifier).json()
    for value in (code, tokens["access_token"], tokens["refresh_token"]):
        assert len(value) * math.log2(64) >= 128


def test_a_public_client_completes_the_flow_with_pkce_alone(
    browser: Browser, client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    app = register_company(db_session, runtime, public=True)
    tokens = _tokens(browser, client, app)
    rotated = refresh(client, app, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text


def test_reusing_a_rotated_refresh_token_revokes_the_family_and_marks_the_grant_compromised(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    first = _tokens(browser, client, company)
    second = refresh(client, company, first["refresh_token"]).json()
    reuse = refresh(client, company, first["refresh_token"])
    assert reuse.json()["error"] == "invalid_grant"
    assert refresh(client, company, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(client, company, second["access_token"]) == {"active": False}
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    assert grant.status == GrantStatus.COMPROMISED


def test_concurrent_refreshes_leave_at_most_one_live_refresh_token(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    tokens = _tokens(browser, client, company)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        results.append(refresh(client, company, tokens["refresh_token"]).json())

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if "refresh_token" in r]
    assert len(winners) <= 1
    live = [w for w in winners
            if refresh(client, company, w["refresh_token"]).status_code == 200]
    assert len(live) <= 1


def test_another_company_cannot_use_the_refresh_token(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    runtime: Runtime,
) -> None:
    tokens = _tokens(browser, client, company)
    other = register_company(db_session, runtime)
    assert refresh(client, other, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(client, company, tokens["refresh_token"]).status_code == 200


def test_a_refresh_cannot_widen_the_scope_and_a_narrowed_one_keeps_the_original_for_later(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company, scopes=["profile.email:read",
                                                        "profile.given_name:read"])
    tokens = redeem(client, company, code, verifier).json()
    wider = refresh(client, company, tokens["refresh_token"],
                    scope="profile.email:read marketing.email")
    assert wider.json()["error"] == "invalid_scope"
    narrow = refresh(client, company, tokens["refresh_token"], scope="profile.email:read").json()
    assert narrow["scope"] == "profile.email:read"
    again = refresh(client, company, narrow["refresh_token"]).json()
    assert set(again["scope"].split()) == {"profile.email:read", "profile.given_name:read"}


def test_a_refresh_after_the_customer_revoked_is_invalid_grant(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    tokens = _tokens(browser, client, company)
    grant_id = db_session.exec(select(Grant)).one().id
    page = browser.submit(f"/connections/{grant_id}/revoke", {}, page="/connections")
    assert page.status_code == 303
    assert refresh(client, company, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(client, company, tokens["access_token"]) == {"active": False}


def test_an_access_token_expires_after_five_minutes(
    browser: Browser, client: TestClient[Litestar], company: Company, clock: FrozenClock
) -> None:
    tokens = _tokens(browser, client, company)
    assert tokens["expires_in"] == 300
    clock.advance(seconds=301)
    assert introspect(client, company, tokens["access_token"]) == {"active": False}
