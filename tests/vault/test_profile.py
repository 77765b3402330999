"""Editing the profile in the portal: what is saved, what is refused, and errors save nothing."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.errors import ValidationFailed
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from tests.factories import Browser, make_customer

FULL_FORM = {
    "email": "nina@example.org",
    "given_name": "Nina",
    "family_name": "Nordmann",
    "phone": "+49 40 123456",
    "street_address": "Elbchaussee 1",
    "postal_code": "22763",
    "locality": "Hamburg",
    "country": "de",
    "birth_date": "1990-04-01",
    # English, so the pages after saving stay in the language the assertions read.
    "locale": "en-GB",
    "time_zone": "Europe/Berlin",
    "interests": "Cycling, coffee",
    "identities": "mastodon: @nina@example.social\nloyalty: BIKE-1",
    "custom": "shoe_size: 39",
}


@pytest.fixture
def browser(client: TestClient[Litestar]) -> Browser:
    browser = Browser(client)
    browser.sign_up("nina@example.org")
    return browser


def test_every_kind_of_field_is_saved_and_shown_again(browser: Browser) -> None:
    saved = browser.submit("/profile", FULL_FORM)
    assert saved.status_code == 303
    page = browser.client.get("/profile").text
    for shown in (
        "Nordmann",
        "+49 40 123456",
        'value="DE"',
        "1990-04-01",
        "Europe/Berlin",
        "coffee, cycling",
        "mastodon: @nina@example.social",
        "shoe_size: 39",
    ):
        assert shown in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "nina-at-example", "not a valid e-mail address"),
        ("given_name", "x" * 501, "at most 500 characters"),
        ("birth_date", "2999-01-01", "past date"),
        ("time_zone", "Mars/Olympus", "time zone name"),
        ("time_zone", "America", "time zone name"),
        ("time_zone", "Europe/" + "x" * 256, "time zone name"),
        ("country", "Germany", "two-letter country code"),
        ("phone", "call me", "digits"),
        ("identities", "myspace", "line 1"),
        ("identities", "myspace: tom", "unknown identity kind"),
        ("custom", "Bad Name: 1", "custom.bad name"),
    ],
)
def test_bad_input_is_explained_and_nothing_is_saved(
    browser: Browser, field: str, value: str, message: str
) -> None:
    browser.submit("/profile", FULL_FORM)
    before = browser.client.get("/profile").text
    response = browser.submit("/profile", {**FULL_FORM, "given_name": "Changed", field: value})
    assert response.status_code == 400
    assert message in response.text
    assert "nothing was saved" in response.text
    after = browser.client.get("/profile").text
    assert "Changed" not in after or "Changed" in before
    assert 'value="Nina"' in after


def test_unknown_field_is_refused_by_the_service(db_session: Session, runtime: Runtime) -> None:
    customer = make_customer(db_session, runtime)
    keyring = runtime.keyring
    with pytest.raises(ValidationFailed) as error:
        vault_service.update_profile(
            db_session,
            cipher=runtime.cipher,
            clock=runtime.clock,
            index_key=keyring.index_key,
            pseudonym_key=keyring.pseudonym_key,
            account=customer,
            changes={"given_name": "A", "salary": "1000"},
        )
    assert error.value.problems == {"salary": "unknown field 'salary'"}


def test_changing_the_profile_email_changes_the_sign_in_email(
    browser: Browser, app: Litestar
) -> None:
    browser.submit("/profile", {**FULL_FORM, "email": "nina.new@example.org"})
    with TestClient(app, base_url="http://127.0.0.1:8000") as fresh:
        assert Browser(fresh).sign_in("nina.new@example.org").status_code == 303
        assert Browser(fresh).sign_in("nina@example.org").status_code == 401


def test_profile_pages_need_a_signed_in_customer(client: TestClient[Litestar]) -> None:
    Browser(client)
    response = client.get("/profile", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/profile"
