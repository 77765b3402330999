"""The customer's own pages in Chromium, in English and German: preferences changed, activity
and receipts read, a permission withdrawn and a connection revoked (each after a confirmation
step), the ended connection in its history, and an intent published with who can see it.

Every page state visited is checked with axe-core (0 critical, 0 serious) at 1280 and 390 px,
and for sideways scrolling on the phone (`check_state`).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    PHONE_WIDTH,
    assert_accessible,
    assert_fits_a_phone,
    register_company,
    sign_up,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
LANGUAGES = ["en", "de"]
WORDS = {
    "en": {"saved": "Saved.", "not saved": "nothing was saved", "activity": "Who accessed",
           "gave": "access: read your e-mail", "changed": "You changed your shoe_size",
           "receipt": "Consent receipt", "will no longer": "will no longer be allowed to",
           "nothing yet": "Nothing has changed yet.", "done": "Done.",
           "ended": "ended connection", "revoked": "You revoked its access.",
           "published": "is published until", "can see": "can see it now",
           "withdraw?": "Withdraw this intent?"},
    "de": {"saved": "Gespeichert.", "not saved": "es wurde nichts gespeichert",
           "activity": "Wer auf meine Daten", "gave": "Zugriff gegeben: E-Mail lesen",
           "changed": "Sie haben geändert: shoe_size", "receipt": "Einwilligungsbeleg",
           "will no longer": "darf dann nicht mehr", "nothing yet": "Noch hat sich nichts",
           "done": "Erledigt.", "ended": "beendete Verbindung",
           "revoked": "Sie haben den Zugriff entzogen.", "published": "veröffentlicht",
           "can see": "kann sie jetzt sehen", "withdraw?": "Diese Suchanfrage zurückziehen?"},
}


DESKTOP = {"width": 1280, "height": 800}


def check_state(page: Any, state: str) -> None:
    """axe-core at desktop and phone width (0 critical, 0 serious), and no sideways scrolling
    on the phone."""
    assert_accessible(page, f"{state} at 1280 px")
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        assert_accessible(page, f"{state} at {PHONE_WIDTH} px")
        assert_fits_a_phone(page)
    finally:
        page.set_viewport_size(DESKTOP)


def _connect(page: Any, live_vault: str, client_id: str, site: str, scopes: list[str]) -> None:
    """Consent on the vault's consent screen, as the customer would (in English)."""
    page.route(f"{site}/**", lambda route: route.fulfill(body="ok"))
    page.goto(f"{live_vault}/oauth/authorize?response_type=code&client_id={client_id}"
              f"&redirect_uri={site}/cb&scope={'%20'.join(scopes)}&state=s"
              "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
              "&code_challenge_method=S256")
    for scope in scopes:
        page.check(f"input[value='{scope}']")
    page.check("input[name='expiry'][value='30d']")
    page.click("button[name='decision'][value='approve']")
    page.wait_for_url(f"{site}/cb**")


def _company(live_vault: str, data_dir: str, scopes: list[str]) -> tuple[str, str, str]:
    name = f"Harbour {secrets.token_hex(2)}"
    site = f"https://{name.lower().replace(' ', '-')}.example"
    client_id, _secret = register_company(live_vault, data_dir, name=name, site=site,
                                          scopes=scopes)
    return client_id, name, site


def _speak(page: Any, live_vault: str, language: str) -> None:
    page.goto(f"{live_vault}/language/{language}?next=/profile")


@pytest.mark.parametrize("language", LANGUAGES)
def test_preferences_are_changed_on_labelled_cards(live_vault: str, live_data_dir: str,
                                                   page: Any, language: str) -> None:
    words = WORDS[language]
    client_id, name, site = _company(live_vault, live_data_dir,
                                     ["marketing.inbox=Send you the headlines"])
    sign_up(page, live_vault, "prefs")
    _connect(page, live_vault, client_id, site, ["marketing.inbox"])
    _speak(page, live_vault, language)
    key = f"{client_id}:inbox"

    page.goto(f"{live_vault}/preferences")
    assert name in page.content()
    check_state(page, "preferences")
    page.check(f"input[name='optin:{key}']")
    page.check(f"input[name='topics_mode:{key}'][value='chosen']")
    page.fill(f"input[name='topics_more:{key}']", "sports, weather")
    page.fill(f"input[name='cap_day:{key}']", "2")
    page.fill("input[name='cap_week:*:*']", "20")
    page.click("form.preferences p.actions button")
    page.wait_for_url(f"{live_vault}/preferences?saved=1**")
    assert words["saved"] in page.content()
    assert page.is_checked(f"input[name='topic:{key}'][value='sports']")
    assert page.input_value(f"input[name='cap_day:{key}']") == "2"
    assert page.input_value("input[name='cap_week:*:*']") == "20"
    check_state(page, "preferences saved")

    page.uncheck(f"input[name='topic:{key}'][value='sports']")
    page.uncheck(f"input[name='topic:{key}'][value='weather']")
    page.click("form.preferences p.actions button")
    assert words["not saved"] in page.content()
    assert page.get_attribute(f"input[name='topics_more:{key}']", "name")
    check_state(page, "preferences with a problem")

    page.goto(f"{live_vault}/preferences")
    page.check("#stop_all")
    page.click("form.preferences p.actions button")
    page.wait_for_url(f"{live_vault}/preferences?saved=1**")
    assert page.is_checked("#stop_all")
    check_state(page, "all marketing stopped")


@pytest.mark.parametrize("language", LANGUAGES)
def test_activity_and_receipts_read_as_sentences(live_vault: str, live_data_dir: str,
                                                 page: Any, language: str,
                                                 tmp_path: Path) -> None:
    words = WORDS[language]
    client_id, name, site = _company(live_vault, live_data_dir,
                                     ["profile.email:read=Send your order receipts"])
    sign_up(page, live_vault, "reader")
    page.fill("#time_zone", "Europe/Berlin")
    page.fill("#custom", "shoe_size: 38")
    page.click("form[action='/profile'] button[type=submit]")
    page.wait_for_url(f"{live_vault}/profile?saved=1")
    _connect(page, live_vault, client_id, site, ["profile.email:read"])
    _speak(page, live_vault, language)

    page.goto(f"{live_vault}/activity")
    content = page.content()
    assert words["activity"] in content
    assert f"{name}" in content and words["gave"] in content
    assert words["changed"] in content
    for code in ("grant.given", "profile.updated", client_id, "custom:"):
        assert code not in content
    check_state(page, "activity")

    page.goto(f"{live_vault}/receipts")
    check_state(page, "receipts")
    page.click("ol.timeline li p a")
    page.wait_for_url(f"{live_vault}/receipts/*")
    content = page.content()
    assert words["receipt"] in content and name in content
    for jargon in ("dpv:", "cmr-vault receipts", "/api/v1"):
        assert jargon not in content
    check_state(page, "receipt record")
    with page.expect_download() as download:
        page.click("main a[download]")
    target = tmp_path / "receipt.json"
    download.value.save_as(target)
    assert json.loads(target.read_text())["claims"]["piiControllers"][0]["piiController"] \
        == name


@pytest.mark.parametrize("language", LANGUAGES)
def test_withdraw_and_revoke_ask_first_and_ended_connections_move_to_history(
    live_vault: str, live_data_dir: str, page: Any, language: str,
) -> None:
    words = WORDS[language]
    client_id, name, site = _company(
        live_vault, live_data_dir,
        ["profile.email:read=Send your order receipts", "marketing.inbox=Tell you about sales"])
    sign_up(page, live_vault, "revoker")
    _connect(page, live_vault, client_id, site, ["profile.email:read", "marketing.inbox"])
    _speak(page, live_vault, language)

    page.goto(f"{live_vault}/connections")
    assert f'href="{site}"' in page.content()
    check_state(page, "connections")
    page.click("a[href*='confirm?scope=marketing.inbox']")
    assert words["will no longer"] in page.content()
    assert words["nothing yet"] in page.content()
    check_state(page, "confirm withdrawing a permission")
    page.click("form.decision a.button")
    page.wait_for_url(f"{live_vault}/connections**")
    page.click("a[href*='confirm?scope=marketing.inbox']")
    page.click("form.decision button[type=submit]")
    page.wait_for_url(f"{live_vault}/connections?revoked=true")
    assert words["done"] in page.content()
    assert "confirm?scope=marketing.inbox" not in page.content()
    check_state(page, "a permission withdrawn")

    page.click("a.button.danger[href$='/confirm']")
    check_state(page, "confirm revoking all access")
    page.click("form.decision button[type=submit]")
    page.wait_for_url(f"{live_vault}/connections?revoked=true")
    history = page.locator("details.ended")
    assert words["ended"] in history.inner_text()
    assert not history.evaluate("element => element.open")
    check_state(page, "connections with a closed history")
    page.click("details.ended summary")
    assert words["revoked"] in history.inner_text() and name in history.inner_text()
    check_state(page, "connections with the history open")


@pytest.mark.parametrize("language", LANGUAGES)
def test_publishing_an_intent_says_who_can_see_it(live_vault: str, live_data_dir: str,
                                                  page: Any, language: str) -> None:
    words = WORDS[language]
    client_id, name, site = _company(live_vault, live_data_dir,
                                     ["intents.bikes=Answer what you are looking for"])
    sign_up(page, live_vault, "seeker")
    _connect(page, live_vault, client_id, site, ["intents.bikes"])
    _speak(page, live_vault, language)

    page.goto(f"{live_vault}/intents")
    check_state(page, "intents")
    page.fill("#topic", "bikes")
    page.fill("#text", "A cargo bike for two children")
    page.click("form[action='/intents'] button[type=submit]")
    page.wait_for_url(f"{live_vault}/intents?published=**")
    confirmation = page.locator("#published").inner_text()
    assert words["published"] in confirmation and words["can see"] in confirmation
    assert name in confirmation
    check_state(page, "intent published")

    page.click("ul.intents a.button")
    assert words["withdraw?"] in page.content()
    check_state(page, "confirm withdrawing an intent")
    page.click("form.decision button[type=submit]")
    page.wait_for_url(f"{live_vault}/intents")
    assert page.locator("ul.intents a.button").count() == 0
