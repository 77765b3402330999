"""A receipt reads as a person's record; the signed file stays one click away."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import Browser
from tests.oauth.flows import Company, get_code


def _first_receipt(browser: Browser) -> str:
    found = re.search(r'href="/receipts/([^".]+)"', browser.client.get("/receipts").text)
    assert found
    return found.group(1)


def test_the_receipt_page_says_who_what_why_and_until_when_in_plain_words(
    browser: Browser, company: Company,
) -> None:
    get_code(browser, company, scopes=["profile.email:read"])

    page = browser.client.get(f"/receipts/{_first_receipt(browser)}").text

    assert f"You gave {company.row.name} access: read your e-mail." in page
    assert "Read your e-mail" in page and "Send your order receipts" in page
    assert "23 November 2027" in page
    assert 'href="https://shop.example/privacy"' in page
    assert "on your vault&#39;s pages" in page or "on your vault's pages" in page
    for jargon in ("dpv:", "cmr-vault receipts", "/api/v1", company.client_id, "KI-CR"):
        assert jargon not in page


def test_the_signed_file_is_a_download_from_the_record(browser: Browser,
                                                       company: Company) -> None:
    get_code(browser, company, scopes=["profile.email:read"])
    receipt_id = _first_receipt(browser)

    page = browser.client.get(f"/receipts/{receipt_id}").text
    download = browser.client.get(f"/receipts/{receipt_id}.json")

    assert f'href="/receipts/{receipt_id}.json" download' in page
    assert "attachment" in download.headers["content-disposition"]
    assert download.json()["claims"]["consentReceiptID"] == receipt_id


def test_nobody_else_can_read_a_customers_receipt(
    browser: Browser, company: Company, other_client: TestClient[Litestar],
) -> None:
    get_code(browser, company, scopes=["profile.email:read"])
    receipt_id = _first_receipt(browser)
    stranger = Browser(other_client)
    stranger.sign_up()

    assert stranger.client.get(f"/receipts/{receipt_id}").status_code == 404
