"""Who sees an intent: exactly the companies the customer allowed, while it is open."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.audit.models import AuditEntry
from cmr_vault.intents.models import Intent
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import Browser
from tests.intents.conftest import allow_intents, publish, second_customer, visible
from tests.oauth.flows import Company


def test_a_company_with_the_topic_permission_sees_an_intent_for_all(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company
) -> None:
    allow_intents(browser, bike_shop)
    assert publish(browser).status_code == 303

    [seen] = visible(client, bike_shop)

    assert seen["topic"] == "bikes"
    assert seen["text"] == "A commuter bike for rainy Hamburg"
    assert seen["budget"] == "up to 900 EUR"
    assert "ada@example.org" not in str(seen)


def test_a_company_sees_no_intent_from_a_customer_who_did_not_allow_it(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    stranger_shop: Company, db_session: Session, runtime: Runtime,
    other_client: TestClient[Litestar],
) -> None:
    allow_intents(browser, bike_shop)
    publish(browser, topic="travel")
    bo = second_customer(db_session, runtime, other_client)
    publish(bo)

    assert visible(client, bike_shop) == []
    assert visible(client, stranger_shop) == []


def test_chosen_companies_see_the_intent_and_no_one_else(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company,
    stranger_shop: Company,
) -> None:
    allow_intents(browser, bike_shop)
    publish(browser, to="chosen", audience=[stranger_shop.client_id])

    assert len(visible(client, stranger_shop)) == 1
    assert visible(client, bike_shop) == []


def test_a_withdrawn_or_expired_intent_disappears(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company, db_session: Session,
    clock: FrozenClock,
) -> None:
    allow_intents(browser, bike_shop)
    publish(browser, days="5")
    publish(browser, days="30")
    db_session.rollback()
    newest = db_session.exec(select(Intent).order_by(Intent.valid_until.desc())).first()  # type: ignore[attr-defined]
    assert newest is not None
    browser.submit(f"/intents/{newest.id}/withdraw", {}, page="/intents")
    assert len(visible(client, bike_shop)) == 1

    clock.advance(days=6)

    assert visible(client, bike_shop) == []


def test_an_invalid_intent_is_shown_again_with_reasons_and_nothing_is_published(
    browser: Browser, db_session: Session
) -> None:
    response = publish(browser, topic="Bikes & more", days="900")
    assert response.status_code == 400
    assert "lower-case letters" in response.text
    assert "1 to 180 days" in response.text
    db_session.rollback()
    assert db_session.exec(select(Intent)).all() == []


@pytest.mark.parametrize("days", ["²", "9" * 5_000])
def test_days_that_are_not_plain_digits_are_a_field_error(
    browser: Browser, db_session: Session, days: str
) -> None:
    response = publish(browser, days=days)
    assert response.status_code == 400
    assert "1 to 180 days" in response.text
    db_session.rollback()
    assert db_session.exec(select(Intent)).all() == []


def test_intents_are_sealed_and_every_sighting_is_audited(
    browser: Browser, client: TestClient[Litestar], bike_shop: Company, db_session: Session
) -> None:
    allow_intents(browser, bike_shop)
    publish(browser)
    visible(client, bike_shop)
    db_session.rollback()
    row = db_session.exec(select(Intent)).one()
    assert "Hamburg" not in row.sealed and "bikes" not in row.topic_index
    seen = db_session.exec(select(AuditEntry).where(AuditEntry.action == "intent.seen")).all()
    assert len(seen) == 1
    assert "Hamburg" not in seen[0].details
