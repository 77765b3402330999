"""Expiry, reminders and renewal: a lapsed permission stops at once, and one step renews it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import CompanyEvent, ConsentReceipt, Grant, GrantStatus
from cmr_vault.marketing.models import ChannelPreference
from cmr_vault.marketing.worker import lifecycle_pass
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import Browser
from tests.marketing.conftest import SALES, preferences_form
from tests.oauth.flows import (
    Company,
    authorize_query,
    consent,
    get_code,
    pkce_pair,
    redeem,
    refresh,
)

SCOPES = ["profile.email:read", "marketing.inbox"]


@pytest.fixture
def thirty_day_grant(customer_browser: Browser, shop: Company,
                     db_session: Session) -> dict[str, Any]:
    """The customer shares e-mail and inbox marketing for 30 days and opts in to the inbox."""
    client = customer_browser.client
    code, verifier = get_code(customer_browser, shop, scopes=SCOPES, scope=" ".join(SCOPES),
                              expiry="30d")
    tokens = redeem(client, shop, code, verifier).json()
    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    return {"tokens": tokens, "subject": grant.pairwise_subject, "grant_id": grant.id,
            "expires_at": grant.expires_at}


def _read(client: TestClient[Litestar], token: str, subject: str) -> Any:
    return client.get(f"/api/v1/subjects/{subject}/profile",
                      params={"fields": "email", "purpose": "Send your order receipts"},
                      headers={"Authorization": f"Bearer {token}"})


def _push(client: TestClient[Litestar], token: str, subject: str, key: str) -> Any:
    return client.post("/api/v1/pushes", headers={"Authorization": f"Bearer {token}"},
                       json={"subject": subject, "channel": "inbox", "topic": "sales",
                             "purpose": SALES, "title": "Sale", "body": "Half price.",
                             "idempotency_key": key})


def _fresh_token(client: TestClient[Litestar], shop: Company, state: dict[str, Any]) -> str:
    answer = refresh(client, shop, state["tokens"]["refresh_token"])
    assert answer.status_code == 200, answer.text
    state["tokens"] = answer.json()
    return str(state["tokens"]["access_token"])


def test_a_lapsed_grant_stops_reads_and_pushes_at_the_expiry_itself(
    customer_browser: Browser, shop: Company, thirty_day_grant: dict[str, Any],
    clock: FrozenClock,
) -> None:
    client, subject = customer_browser.client, thirty_day_grant["subject"]
    clock.move_to(thirty_day_grant["expires_at"] - timedelta(minutes=1))
    token = _fresh_token(client, shop, thirty_day_grant)
    assert _read(client, token, subject).status_code == 200
    assert _push(client, token, subject, "before").json()["status"] == "queued"

    clock.advance(minutes=2)

    assert _read(client, token, subject).status_code == 401
    assert _push(client, token, subject, "after").status_code == 401
    assert refresh(client, shop, thirty_day_grant["tokens"]["refresh_token"]).status_code == 400


def test_the_customer_is_reminded_in_the_inbox_before_the_grant_lapses(
    customer_browser: Browser, shop: Company, thirty_day_grant: dict[str, Any],
    runtime: Runtime, clock: FrozenClock,
) -> None:
    clock.advance(days=10)
    lifecycle_pass(runtime)
    customer_browser.sign_in("ada@example.org")
    assert "lapses soon" not in customer_browser.client.get("/inbox").text

    clock.advance(days=10)
    lifecycle_pass(runtime)
    lifecycle_pass(runtime)

    customer_browser.sign_in("ada@example.org")  # weeks later: a new session
    inbox = customer_browser.client.get("/inbox").text
    assert inbox.count(f"Your permission for {shop.row.name} lapses soon") == 1
    assert f'action="/connections/{thirty_day_grant["grant_id"]}/renew"' in inbox


def test_renewal_after_the_lapse_restores_access_in_one_step(
    customer_browser: Browser, shop: Company, thirty_day_grant: dict[str, Any],
    runtime: Runtime, clock: FrozenClock, db_session: Session,
) -> None:
    client, subject = customer_browser.client, thirty_day_grant["subject"]
    clock.move_to(thirty_day_grant["expires_at"] - timedelta(minutes=1))
    _fresh_token(client, shop, thirty_day_grant)
    clock.advance(minutes=2)
    lifecycle_pass(runtime)
    db_session.rollback()
    assert db_session.get(Grant, thirty_day_grant["grant_id"]).status == GrantStatus.EXPIRED
    customer_browser.sign_in("ada@example.org")
    assert "expired" in client.get("/connections").text

    response = customer_browser.submit(f"/connections/{thirty_day_grant['grant_id']}/renew", {},
                                       page="/connections")

    assert response.status_code == 303
    token = _fresh_token(client, shop, thirty_day_grant)
    assert _read(client, token, subject).json()["fields"]["email"] == "ada@example.org"
    assert _push(client, token, subject, "renewed").json()["status"] == "queued"
    db_session.rollback()
    grant = db_session.get(Grant, thirty_day_grant["grant_id"])
    assert grant.status == GrantStatus.ACTIVE
    assert grant.expires_at == clock.now() + timedelta(days=30)


def test_a_lapse_is_recorded_once_with_a_receipt_and_a_company_event(
    thirty_day_grant: dict[str, Any], runtime: Runtime, clock: FrozenClock,
    db_session: Session,
) -> None:
    clock.move_to(thirty_day_grant["expires_at"] + timedelta(seconds=1))
    lifecycle_pass(runtime)
    lifecycle_pass(runtime)
    db_session.rollback()
    expired = db_session.exec(select(ConsentReceipt).where(
        ConsentReceipt.event == "expired")).all()
    assert len(expired) == 1
    events = db_session.exec(select(CompanyEvent).where(
        CompanyEvent.type == "grant.expired")).all()
    assert len(events) == 1
    assert thirty_day_grant["subject"] in events[0].payload


def test_a_grant_without_end_is_refused_where_the_policy_sets_a_reaffirmation_period(
    customer_browser: Browser, shop: Company, db_session: Session,
) -> None:
    _, challenge = pkce_pair()
    query = authorize_query(shop, challenge=challenge, scope="marketing.inbox")
    response = consent(customer_browser, query, expiry="never")
    assert response.status_code == 400
    assert "Choose how long" in response.text
    db_session.rollback()
    assert db_session.exec(select(Grant)).first() is None


def test_a_lapsed_opt_in_stops_pushes_until_the_customer_opts_in_again(
    customer_browser: Browser, shop: Company, thirty_day_grant: dict[str, Any],
    runtime: Runtime, clock: FrozenClock, db_session: Session,
) -> None:
    client, subject = customer_browser.client, thirty_day_grant["subject"]
    db_session.rollback()
    row = db_session.exec(select(ChannelPreference).where(
        ChannelPreference.channel == "inbox")).one()
    assert row.expires_at == clock.now() + timedelta(days=365)
    db_session.rollback()
    with db_session.begin():
        row = db_session.exec(select(ChannelPreference).where(
            ChannelPreference.channel == "inbox")).one()
        row.expires_at = clock.now() + timedelta(minutes=1)
    clock.advance(minutes=2)

    refused = _push(client, thirty_day_grant["tokens"]["access_token"], subject, "lapsed")

    assert refused.status_code == 403
    assert "push.opt-in-expired" in refused.json()["errors"]
