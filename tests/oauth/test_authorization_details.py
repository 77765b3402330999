"""RFC 9396 Rich Authorization Requests: the company names fields, channels, purposes and an
end date; the customer approves item by item; the grant, the receipt and the tokens say what
was approved, and nothing outside it is read."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import ConsentReceipt, Grant
from cmr_vault.oauth.authorization_details import DETAILS_TYPE
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import Browser
from tests.oauth.flows import (
    Company,
    authorize_query,
    consent,
    introspect,
    pkce_pair,
    redeem,
    redirect_params,
    refresh,
    register_company,
)

RECEIPTS = "Send your order receipts"
NAME = "Address you by name"
SALES = "Tell you about sales"


def details(clock: FrozenClock, **item: Any) -> str:
    """One authorization detail of the vault's type, ending in ten days unless told."""
    body = {
        "type": DETAILS_TYPE,
        "fields": ["email", "given_name"],
        "channels": ["email"],
        "purposes": [RECEIPTS, NAME, SALES],
        "expires_at": (clock.now() + timedelta(days=10)).isoformat(),
    }
    body.update(item)
    return json.dumps([{k: v for k, v in body.items() if v is not None}])


def rar_query(company: Company, challenge: str, authorization_details: str) -> str:
    """An authorization request with details and no scope parameter at all."""
    query = authorize_query(
        company, challenge=challenge, authorization_details=authorization_details
    )
    return urlencode([(k, v) for k, v in parse_qsl(query) if k != "scope"])


def approve(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    authorization_details: str,
    scopes: list[str],
) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    answer = consent(
        browser, rar_query(company, challenge, authorization_details), scopes=scopes, expiry="1y"
    )
    tokens = redeem(client, company, redirect_params(answer)["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def test_the_consent_screen_shows_each_item_with_only_the_purposes_asked_for(
    browser: Browser, company: Company, clock: FrozenClock
) -> None:
    asked = details(clock, fields=["email"], channels=None, purposes=[RECEIPTS])
    page = browser.client.get(f"/oauth/authorize?{rar_query(company, pkce_pair()[1], asked)}")
    assert page.status_code == 200, page.text
    assert 'value="profile.email:read"' in page.text
    assert 'value="marketing.email"' not in page.text
    assert RECEIPTS in page.text
    assert "at the latest" in page.text


def test_what_the_customer_approves_is_recorded_and_echoed_in_tokens(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    clock: FrozenClock,
    db_session: Session,
) -> None:
    tokens = approve(
        browser,
        client,
        company,
        details(clock, fields=["email"], purposes=[RECEIPTS, SALES]),
        scopes=["profile.email:read", "marketing.email"],
    )
    echoed = tokens["authorization_details"]
    assert [(d["fields"], d["channels"], d["purposes"]) for d in echoed] == [
        (["email"], ["email"], [RECEIPTS, SALES])
    ]
    assert tokens["scope"] == "profile.email:read marketing.email"
    assert introspect(client, company, tokens["access_token"])["authorization_details"] == echoed
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    assert json.loads(grant.purposes) == {
        "profile.email:read": [RECEIPTS],
        "marketing.email": [SALES],
    }
    assert grant.expires_at == clock.now() + timedelta(days=10)
    receipt = db_session.exec(select(ConsentReceipt)).one()
    payload = receipt.jws.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["authorizationDetails"] == echoed


def test_a_purpose_left_out_of_the_details_is_refused_at_read_time(
    browser: Browser,
    client: TestClient[Litestar],
    clock: FrozenClock,
    db_session: Session,
    runtime: Runtime,
) -> None:
    company = register_company(
        db_session, runtime, notice={"profile.email:read": [RECEIPTS, "Check for fraud"]}
    )
    tokens = approve(
        browser,
        client,
        company,
        details(clock, fields=["email"], channels=None, purposes=[RECEIPTS]),
        scopes=["profile.email:read"],
    )
    db_session.rollback()
    subject = db_session.exec(select(Grant)).one().pairwise_subject
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    url = f"/api/v1/subjects/{subject}/profile"
    assert (
        client.get(url, params={"fields": "email", "purpose": RECEIPTS}, headers=bearer).status_code
        == 200
    )
    assert (
        client.get(
            url, params={"fields": "email", "purpose": "Check for fraud"}, headers=bearer
        ).status_code
        == 403
    )


def test_scopes_and_details_work_together(
    browser: Browser, client: TestClient[Litestar], company: Company, clock: FrozenClock
) -> None:
    verifier, challenge = pkce_pair()
    query = authorize_query(
        company,
        challenge=challenge,
        scope="profile.given_name:read",
        authorization_details=details(clock, fields=["email"], channels=None, purposes=[RECEIPTS]),
    )
    answer = consent(browser, query)
    tokens = redeem(client, company, redirect_params(answer)["code"], verifier).json()
    assert set(tokens["scope"].split()) == {"profile.given_name:read", "profile.email:read"}


@pytest.mark.parametrize(
    "item",
    [
        {"type": "payment_initiation"},
        {"locations": ["https://elsewhere.example"]},
        {"fields": ["email", "password"]},
        {"fields": ["phone"]},
        {"channels": ["carrier-pigeon"]},
        {"purposes": ["Sell your data"]},
        {"expires_at": "next year"},
        {"expires_at": "2001-01-01T00:00:00+00:00"},
        {"fields": None, "channels": None},
    ],
    ids=[
        "unknown type",
        "unknown member",
        "unknown field",
        "field not registered",
        "unknown channel",
        "undeclared purpose",
        "bad date",
        "past date",
        "nothing asked",
    ],
)
def test_details_the_vault_does_not_understand_are_refused(
    browser: Browser, company: Company, clock: FrozenClock, item: dict[str, Any]
) -> None:
    query = rar_query(company, pkce_pair()[1], details(clock, **item))
    page = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert page.status_code == 302, page.text
    params = redirect_params(page)
    assert params["error"] == "invalid_authorization_details"
    assert "code" not in params


def test_a_refresh_may_ask_for_less_than_was_approved(
    browser: Browser, client: TestClient[Litestar], company: Company, clock: FrozenClock
) -> None:
    tokens = approve(
        browser,
        client,
        company,
        details(clock),
        scopes=["profile.email:read", "profile.given_name:read"],
    )
    narrower = details(
        clock,
        fields=["email"],
        channels=None,
        purposes=[RECEIPTS],
        expires_at=(clock.now() + timedelta(days=1)).isoformat(),
    )
    renewed = refresh(client, company, tokens["refresh_token"], authorization_details=narrower)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["authorization_details"][0]["fields"] == ["email"]


def test_an_item_the_customer_unticks_is_left_out_of_the_grant_and_the_tokens(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    clock: FrozenClock,
    db_session: Session,
) -> None:
    tokens = approve(browser, client, company, details(clock), scopes=["profile.email:read"])
    assert tokens["authorization_details"] == [
        {
            "type": DETAILS_TYPE,
            "fields": ["email"],
            "purposes": [RECEIPTS],
            "expires_at": (clock.now() + timedelta(days=10)).isoformat().replace("+00:00", "Z"),
        }
    ]
    assert tokens["scope"] == "profile.email:read"
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    assert json.loads(grant.scopes) == ["profile.email:read"]
    assert json.loads(grant.purposes) == {"profile.email:read": [RECEIPTS]}


def test_the_server_metadata_names_the_details_type(client: TestClient[Litestar]) -> None:
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["authorization_details_types_supported"] == [DETAILS_TYPE]
