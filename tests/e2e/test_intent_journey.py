"""Pull instead of push, end to end: the customer publishes an intent in Chromium, the company
answers through the API with an offer that carries its authorization request, the customer
accepts, consents, and the company reads what was granted."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from tests.e2e.conftest import assert_each_choice_sits_beside_its_words, register_company, sign_up

pytestmark = pytest.mark.browser

REDIRECT_URI = "https://bikes.example/cb"


def test_intent_offer_accept_consent_read(
    live_vault: str, live_data_dir: str, page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is on loopback
    client_id, secret = register_company(
        live_vault, live_data_dir, name="Harbour Bikes", site="https://bikes.example",
        scopes=["profile.email:read=Send your order receipts",
                "intents.bikes=Answer what you are looking for"])
    email = sign_up(page, live_vault, "intent")

    page.goto(f"{live_vault}/intents")
    page.fill("#topic", "bikes")
    page.fill("#text", "A cargo bike for two children")
    page.fill("#budget", "up to 3000 EUR")
    assert_each_choice_sits_beside_its_words(page)
    page.check("input[name='to'][value='chosen']")
    page.check(f"input[name='audience'][value='{client_id}']")
    page.click("button:has-text('Publish')")
    page.wait_for_url(f"{live_vault}/intents?published=**")
    assert "A cargo bike for two children" in page.content()
    assert "Harbour Bikes" in page.locator("#published").inner_text()

    [intent] = httpx.get(f"{live_vault}/api/v1/intents", auth=(client_id, secret)).json()["intents"]
    assert intent["text"] == "A cargo bike for two children"
    company = OAuth2Session(client_id, redirect_uri=REDIRECT_URI, pkce="S256",
                            scope=["profile.email:read"])
    url, _state = company.authorization_url(f"{live_vault}/oauth/authorize")
    offer = httpx.post(f"{live_vault}/api/v1/intents/{intent['intent_id']}/offers",
                       auth=(client_id, secret),
                       json={"title": "The Longtail 2", "body": "Room for two, rain cover.",
                             "value": "free delivery", "consent_request": urlsplit(url).query})
    assert offer.status_code == 202, offer.text

    page.goto(f"{live_vault}/inbox")
    assert "The Longtail 2" in page.content()
    landed: list[str] = []
    page.route("https://bikes.example/**",
               lambda route: (landed.append(route.request.url), route.fulfill(body="ok")))
    page.click(f"#offer-{offer.json()['offer_id']} button:has-text('Accept')")
    page.wait_for_selector("text=Harbour Bikes asks for access")
    page.check("input[value='profile.email:read']")
    page.check("input[name='expiry'][value='30d']")
    page.click("button:has-text('Allow')")
    page.wait_for_url("https://bikes.example/cb**")

    token = company.fetch_token(f"{live_vault}/oauth/token", authorization_response=landed[-1],
                                auth=HTTPBasicAuth(client_id, secret), include_client_id=False)
    assert token["scope"] == ["profile.email:read"]
    read = company.get(f"{live_vault}/api/v1/subjects/{intent['subject']}/profile",
                       params={"fields": "email", "purpose": "Send your order receipts"})
    assert read.status_code == 200, read.text
    assert read.json()["fields"] == {"email": email}
