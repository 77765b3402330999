"""The activity page reads as sentences about the customer's own data, in their time zone."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import Browser
from tests.oauth.flows import Company, get_code, redeem

PROFILE = {"email": "ada@example.org", "given_name": "Ada", "locality": "Hamburg",
           "time_zone": "Europe/Berlin", "custom": "shoe_size: 39"}


def _newest(page: str) -> str:
    """The sentence of the newest entry (the timeline lists the newest first)."""
    found = re.search(r'<ol class="timeline">\s*<li[^>]*>\s*<time[^>]*>[^<]*</time>\s*'
                      r"<p>(.*?)</p>", page)
    assert found, page
    return found.group(1)


def _save(browser: Browser, **changes: str) -> None:
    response = browser.submit("/profile", {**PROFILE, **changes})
    assert response.status_code == 303, response.text


def test_a_profile_save_lists_only_the_fields_that_changed_by_their_names(
    browser: Browser,
) -> None:
    _save(browser)
    _save(browser, locality="Berlin", custom="shoe_size: 40")

    page = browser.client.get("/activity").text

    assert _newest(page) == "You changed your shoe_size and city."
    assert "custom:" not in page


def test_times_are_shown_in_the_customers_own_time_zone(browser: Browser) -> None:
    _save(browser)

    page = browser.client.get("/activity").text

    assert "Times are in your time zone, Europe/Berlin." in page
    assert "+01:00" in page  # the machine-readable <time> carries Berlin's offset in November


def test_a_company_appears_by_name_and_no_event_code_or_client_id_is_shown(
    browser: Browser, client: TestClient[Litestar], company: Company,
) -> None:
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    redeem(client, company, code, verifier)

    page = browser.client.get("/activity").text

    assert f"You gave {company.row.name} access: read your e-mail." in page
    assert f"{company.row.name} connected to your vault." in page
    for hidden in (company.client_id, "grant.given", "token.issued", "dpv:"):
        assert hidden not in page


def test_the_activity_page_is_german_for_a_german_reader(browser: Browser) -> None:
    _save(browser)
    browser.client.cookies.set("cmr_lang", "de")

    page = browser.client.get("/activity").text

    assert "Wer auf meine Daten zugegriffen hat" in page
    assert _newest(page).startswith("Sie haben geändert:")
