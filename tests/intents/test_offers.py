"""Offers, invitations and value exchange: decided like pushes, answered by the customer."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from cmr_vault.intents.models import Offer
from tests.factories import Browser
from tests.intents.conftest import allow_intents, publish, visible
from tests.marketing.conftest import preferences_form
from tests.oauth.flows import REDIRECT_URI, Company, consent, pkce_pair, redeem, redirect_params


@pytest.fixture
def open_intent(browser: Browser, client: TestClient[Litestar],
                bike_shop: Company) -> dict[str, Any]:
    allow_intents(browser, bike_shop)
    publish(browser)
    return visible(client, bike_shop)[0]


def _offer(client: TestClient[Litestar], company: Company, intent_id: str, **extra: str) -> Any:
    return client.post(f"/api/v1/intents/{intent_id}/offers", headers=company.auth(),
                       json={"title": "The Rainrider 3", "body": "Mudguards included.",
                             "value": "10 % off", **extra})


def test_an_offer_lands_in_the_inbox_and_can_be_declined(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    open_intent: dict[str, Any],
) -> None:
    answer = _offer(client, bike_shop, open_intent["intent_id"])
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "delivered"
    inbox = browser.client.get("/inbox").text
    assert "The Rainrider 3" in inbox and "10 % off" in inbox
    assert 'for your intent “bikes”' in inbox

    browser.submit(f"/offers/{answer.json()['offer_id']}/decline", {}, page="/inbox")
    assert "You declined this." in browser.client.get("/inbox").text


def test_a_paused_customer_gets_the_offer_after_the_pause(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    open_intent: dict[str, Any], clock: Any,
) -> None:
    browser.submit("/preferences", preferences_form(bike_shop, all__pause="2026-12-01"))
    answer = _offer(client, bike_shop, open_intent["intent_id"])
    assert answer.json()["status"] == "deferred"
    assert "offer.paused-all" in answer.json()["decision"]["rule_ids"]
    assert "The Rainrider 3" not in browser.client.get("/inbox").text
    clock.advance(days=9)
    browser.sign_in("ada@example.org")
    assert "The Rainrider 3" in browser.client.get("/inbox").text


def test_the_attention_budget_refuses_offers_with_the_reason(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    open_intent: dict[str, Any],
) -> None:
    browser.submit("/preferences", preferences_form(bike_shop, all__cap_day="1"))
    assert _offer(client, bike_shop, open_intent["intent_id"]).status_code == 202
    refused = _offer(client, bike_shop, open_intent["intent_id"])
    assert refused.status_code == 403
    assert "offer.attention-budget-day" in refused.json()["errors"]


def test_blocking_a_company_hides_intents_and_refuses_its_offers(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    open_intent: dict[str, Any],
) -> None:
    first = _offer(client, bike_shop, open_intent["intent_id"]).json()
    browser.submit(f"/offers/{first['offer_id']}/decline", {"block": "yes"}, page="/inbox")

    assert visible(client, bike_shop) == []
    assert _offer(client, bike_shop, open_intent["intent_id"]).status_code == 404
    assert "The Rainrider 3" not in browser.client.get("/inbox").text


def test_an_accept_link_must_be_the_companys_own_authorization_request(
    client: TestClient[Litestar], bike_shop: Company, stranger_shop: Company,
    open_intent: dict[str, Any],
) -> None:
    forged = urlencode({"client_id": stranger_shop.client_id, "response_type": "code",
                        "code_challenge": "x" * 43})
    answer = _offer(client, bike_shop, open_intent["intent_id"], consent_request=forged)
    assert answer.status_code == 400
    assert "your own client_id" in json.dumps(answer.json())


def test_accepting_an_offer_leads_through_consent_to_a_read(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    open_intent: dict[str, Any],
) -> None:
    verifier, challenge = pkce_pair()
    query = urlencode({"response_type": "code", "client_id": bike_shop.client_id,
                       "redirect_uri": REDIRECT_URI, "scope": "profile.email:read",
                       "state": "offer-1", "code_challenge": challenge,
                       "code_challenge_method": "S256"})
    offer = _offer(client, bike_shop, open_intent["intent_id"], consent_request=query).json()

    accepted = browser.submit(f"/offers/{offer['offer_id']}/accept", {}, page="/inbox")
    assert accepted.headers["location"] == f"/oauth/authorize?{query}"
    code = redirect_params(consent(browser, query))["code"]
    token = redeem(client, bike_shop, code, verifier).json()["access_token"]

    read = client.get(f"/api/v1/subjects/{open_intent['subject']}/profile",
                      params={"fields": "email", "purpose": "Send your order receipts"},
                      headers={"Authorization": f"Bearer {token}"})
    assert read.json()["fields"] == {"email": "ada@example.org"}


def test_a_value_offer_shows_on_the_consent_screen_and_is_recorded_and_fulfilled(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company, db_session: Session,
) -> None:
    value = client.post("/api/v1/value-offers", headers=bike_shop.auth(),
                        json={"kind": "points", "description": "500 loyalty points"}).json()
    _, challenge = pkce_pair()
    query = urlencode({"response_type": "code", "client_id": bike_shop.client_id,
                       "redirect_uri": REDIRECT_URI, "scope": "profile.email:read",
                       "state": "v", "code_challenge": challenge,
                       "code_challenge_method": "S256", "value_offer": value["value_offer_id"]})
    assert "500 loyalty points" in browser.client.get(f"/oauth/authorize?{query}").text
    consent(browser, query)
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    assert grant.value_offer_id == value["value_offer_id"]
    receipt_page = browser.client.get("/receipts").text
    receipt_id = receipt_page.split('.json"')[0].rsplit('href="/receipts/', 1)[1]
    claims = browser.client.get(f"/receipts/{receipt_id}.json").json()["claims"]
    assert claims["valueExchange"]["description"] == "500 loyalty points"
    assert "not yet given" in browser.client.get("/connections").text

    done = client.post(f"/api/v1/grants/{grant.id}/value-fulfilled", headers=bike_shop.auth())

    assert done.status_code == 200
    assert "500 loyalty points — given on" in browser.client.get("/connections").text


def test_a_programme_invitation_accepted_becomes_a_grant(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company, db_session: Session,
    open_intent: dict[str, Any],
) -> None:
    programme = client.post("/api/v1/programmes", headers=bike_shop.auth(), json={
        "kind": "product-tests", "name": "Rainrider test riders"}).json()
    invitation = client.post(
        f"/api/v1/programmes/{programme['programme_id']}/invitations", headers=bike_shop.auth(),
        json={"subject": open_intent["subject"], "title": "Ride our prototype",
              "body": "Four weeks, one bike, your feedback."})
    assert invitation.status_code == 202, invitation.text
    assert "Invitation from Bike Shop to Rainrider test riders" in \
        browser.client.get("/inbox").text

    browser.submit(f"/offers/{invitation.json()['offer_id']}/accept", {}, page="/inbox")

    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    assert "programmes.product-tests" in json.loads(grant.scopes)
    assert "Invite you to take part in product tests" in browser.client.get("/connections").text
    assert db_session.exec(select(Offer)).one().status == "accepted"


def test_an_invitation_to_a_subject_without_a_grant_is_forbidden_not_a_missing_programme(
    client: TestClient[Litestar], bike_shop: Company,
) -> None:
    programme = client.post("/api/v1/programmes", headers=bike_shop.auth(), json={
        "kind": "product-tests", "name": "Saddle testers"}).json()
    invitation = client.post(
        f"/api/v1/programmes/{programme['programme_id']}/invitations", headers=bike_shop.auth(),
        json={"subject": "0" * 40, "title": "Tell us", "body": "Two questions."})
    assert invitation.status_code == 403
    assert "grant in force" in invitation.json()["detail"]
