"""A company's journey against the real server: discovery, consent in Chromium, tokens, reads,
refresh, and a revocation in the portal that stops the company's next call.

The company side is requests-oauthlib, a third-party OAuth client, given only the issuer URL.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from tests.e2e.conftest import assert_each_choice_sits_beside_its_words, register_company, sign_up

pytestmark = pytest.mark.browser

PASSWORD = "a long browser password"
REDIRECT_URI = "https://shop.example/cb"


def test_discover_consent_read_refresh_and_revoke(
    live_vault: str, live_data_dir: str, page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is on loopback
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")  # the customer may grant less
    client_id, client_secret = register_company(
        live_vault, live_data_dir, name="Corner Shop", site="https://shop.example",
        scopes=["profile.email:read=Send your order receipts",
                "profile.given_name:read=Greet you by name"])
    meta = httpx.get(f"{live_vault}/.well-known/oauth-authorization-server").json()
    company = OAuth2Session(client_id, redirect_uri=REDIRECT_URI, pkce="S256",
                            scope=["profile.email:read", "profile.given_name:read"])
    url, _state = company.authorization_url(meta["authorization_endpoint"])

    landed: list[str] = []
    page.route("https://shop.example/**",
               lambda route: (landed.append(route.request.url), route.fulfill(body="ok")))
    page.goto(url)  # a newcomer: the sign-in page says who asks, and sign-up comes back here
    assert "Corner Shop asks for access" in page.content()
    page.click("main a:has-text('Create your vault')")
    email = sign_up(page, live_vault, "journey", lands_on=url)
    assert "Corner Shop asks for access" in page.content()
    assert page.locator("input[type=checkbox]:checked, input[type=radio]:checked").count() == 0
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert_each_choice_sits_beside_its_words(page)
    page.check("input[value='profile.email:read']")
    page.check("input[name='expiry'][value='30d']")
    page.click("button:has-text('Allow')")
    page.wait_for_url("https://shop.example/cb**")
    callback = landed[-1]
    assert parse_qs(urlsplit(callback).query)["iss"] == [meta["issuer"]]

    credentials = HTTPBasicAuth(client_id, client_secret)
    token = company.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                auth=credentials, include_client_id=False)
    assert token["scope"] == ["profile.email:read"]
    company.scope = token["scope"]  # what was granted, not what was asked for
    grants = httpx.get(f"{live_vault}/api/v1/grants", auth=(client_id, client_secret)).json()
    subject = grants["grants"][0]["subject"]
    read = company.get(f"{live_vault}/api/v1/subjects/{subject}/profile",
                       params={"fields": "email", "purpose": "Send your order receipts"})
    assert read.status_code == 200, read.text
    assert read.json()["fields"] == {"email": email}
    refused = company.get(f"{live_vault}/api/v1/subjects/{subject}/profile",
                          params={"fields": "given_name", "purpose": "Greet you by name"})
    assert refused.status_code == 403
    assert "given_name" in refused.json()["errors"]

    company.refresh_token(meta["token_endpoint"], auth=credentials)
    assert company.get(f"{live_vault}/api/v1/subjects/{subject}/profile",
                       params={"fields": "email", "purpose": "Send your order receipts"}
                       ).status_code == 200

    page.goto(f"{live_vault}/connections")
    page.click("a:has-text('Revoke all access for Corner Shop')")
    assert "Nothing has changed yet" in page.content()
    page.click("button:has-text('Yes, revoke all access')")
    page.wait_for_url(f"{live_vault}/connections?revoked=true")
    assert "revoked" in page.content()
    after = company.get(f"{live_vault}/api/v1/subjects/{subject}/profile",
                        params={"fields": "email", "purpose": "Send your order receipts"})
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["www-authenticate"]
