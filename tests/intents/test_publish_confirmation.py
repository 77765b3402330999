"""Publishing an intent says so, and names who can see it; withdrawing asks first."""

from __future__ import annotations

from sqlmodel import Session, select

from cmr_vault.intents.models import Intent
from tests.factories import Browser
from tests.intents.conftest import allow_intents, publish
from tests.oauth.flows import Company


def test_publishing_confirms_and_names_the_companies_that_can_see_it(
    browser: Browser, bike_shop: Company, stranger_shop: Company,
) -> None:
    allow_intents(browser, bike_shop)

    response = publish(browser)
    page = browser.client.get(response.headers["location"]).text

    assert "Your intent about “bikes” is published until" in page
    assert "1 companies" not in page and "One company can see it now:" in page
    assert f"<li>{bike_shop.row.name}</li>" in page
    assert f"<li>{stranger_shop.row.name}</li>" not in page


def test_publishing_to_all_with_no_company_allowed_says_nobody_sees_it_yet(
    browser: Browser, bike_shop: Company,
) -> None:
    response = publish(browser, topic="travel")
    page = browser.client.get(response.headers["location"]).text

    assert "No company can see it yet" in page


def test_publishing_to_chosen_companies_names_exactly_those(
    browser: Browser, bike_shop: Company, stranger_shop: Company,
) -> None:
    response = publish(browser, to="chosen", audience=[stranger_shop.client_id])
    page = browser.client.get(response.headers["location"]).text

    assert f"<li>{stranger_shop.row.name}</li>" in page
    assert f"<li>{bike_shop.row.name}</li>" not in page


def test_withdrawing_an_intent_asks_first(browser: Browser, bike_shop: Company,
                                          db_session: Session) -> None:
    publish(browser)
    db_session.rollback()
    intent = db_session.exec(select(Intent)).one()

    page = browser.client.get(f"/intents/{intent.id}/withdraw").text

    assert "Withdraw this intent?" in page
    assert "Nothing has changed yet." in page
    db_session.rollback()
    assert db_session.exec(select(Intent)).one().status == "open"
