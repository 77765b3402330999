"""The whole flow: consent screen, code with PKCE, tokens, refresh, revocation."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import Browser
from tests.oauth.flows import Company, get_code, introspect, redeem, refresh


def test_approved_request_yields_tokens_for_the_chosen_scopes(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    response = redeem(client, company, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["scope"] == "profile.email:read"
    assert introspect(client, company, tokens["access_token"])["active"] is True


def test_refresh_rotates_and_the_new_tokens_work(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company)
    first = redeem(client, company, code, verifier).json()
    second = refresh(client, company, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert introspect(client, company, rotated["access_token"])["active"] is True
