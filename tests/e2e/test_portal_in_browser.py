"""A customer's first visit, in a real browser: sign up, edit the profile, export it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import sign_up

pytestmark = pytest.mark.browser

PASSWORD = "a long browser password"


def test_sign_up_edit_profile_and_export(live_vault: str, page, tmp_path: Path) -> None:
    email = f"browser-{secrets.token_hex(3)}@example.org"
    page.goto(f"{live_vault}/")
    page.click("text=Create your vault")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD)
    page.click("button:has-text('Create vault')")
    page.wait_for_url(f"{live_vault}/profile")

    page.fill("#given_name", "Brigitte")
    page.fill("#locality", "Köln")
    page.fill("#time_zone", "Europe/Berlin")
    page.fill("#interests", "cycling, jazz")
    page.fill("#identities", "mastodon: @brigitte@example.social")
    page.fill("#custom", "shoe_size: 38")
    page.click("button:has-text('Save profile')")
    page.wait_for_url(f"{live_vault}/profile?saved=1")
    assert page.input_value("#given_name") == "Brigitte"
    assert page.input_value("#locality") == "Köln"
    assert "Saved." in page.content()

    page.click("nav >> text=Export")
    page.fill("#password", PASSWORD)
    with page.expect_download() as download_info:
        page.click("button:has-text('Download export')")
    target = tmp_path / "export.json"
    download_info.value.save_as(target)
    document = json.loads(target.read_text())
    assert {"account.created", "profile.updated"} <= {e["action"] for e in document["access_log"]}
    assert document["profile"]["email"] == email
    assert document["profile"]["given_name"] == "Brigitte"
    assert document["profile"]["interests"] == ["cycling", "jazz"]
    assert document["profile"]["custom"] == {"shoe_size": "38"}


def test_a_bad_value_is_explained_on_the_page(live_vault: str, page) -> None:
    sign_up(page, live_vault, "bad")
    page.fill("#country", "Deutschland")
    page.click("button:has-text('Save profile')")
    assert "two-letter country code" in page.content()
    assert "nothing was saved" in page.content()


def test_activity_page_proves_every_entry_is_in_the_signed_log(live_vault: str, page) -> None:
    sign_up(page, live_vault, "activity")
    page.fill("#given_name", "Alex")
    page.click("button:has-text('Save profile')")
    page.click("nav >> text=Activity")
    page.wait_for_url(f"{live_vault}/activity")
    content = page.content()
    assert "You changed your given name." in content
    assert "profile.updated" not in content
    assert "are proven to be in the signed log" in content
    assert "Not proven" not in content
