"""The shared layout in a real browser, in English and German, on a desktop and a phone:
every page state visited passes axe-core (no critical or serious violation), nothing scrolls
sideways at 390 px, the menu folds away on a phone without JavaScript, the skip link is the
first tab stop, and a German page shows none of the English texts it has a translation for."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest

from cmr_vault.i18n.catalogs import merged_catalog
from tests.e2e.conftest import (
    BROWSER_PASSWORD,
    PHONE_WIDTH,
    assert_accessible,
    assert_fits_a_phone,
    register_company,
    sign_up,
)

pytestmark = pytest.mark.browser

LANGUAGES = ("en", "de")
VISITOR_PAGES = ("/", "/signin", "/signup", "/no-such-page")
CUSTOMER_PAGES = ("/", "/profile", "/export", "/account/password", "/erase", "/no-such-page")
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


def english_with_german_translation() -> list[str]:
    """Runs of English text (at least three words) that German pages must not show."""
    runs = []
    for message in merged_catalog("de"):
        msgid = message.id[0] if isinstance(message.id, tuple) else message.id
        german = message.string[0] if isinstance(message.string, tuple) else message.string
        if not msgid or msgid == german:
            continue
        runs += [run.strip() for run in PLACEHOLDER.split(msgid) if len(run.split()) >= 3]
    return runs


@pytest.fixture
def phone(browser: object) -> Iterator[object]:
    """A phone-sized context; JavaScript off, since no task may need it."""
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": PHONE_WIDTH, "height": 844}, java_script_enabled=False)
    yield context.new_page()
    context.close()


def _in_language(page: object, live_vault: str, language: str, path: str) -> None:
    back = quote(path, safe="/")
    page.goto(f"{live_vault}/language/{language}?next={back}")  # type: ignore[attr-defined]
    assert page.get_attribute("html", "lang") == language  # type: ignore[attr-defined]


def _check(page: object, phone: object, live_vault: str, language: str, path: str,
           english: list[str]) -> None:
    _in_language(page, live_vault, language, path)
    assert_accessible(page, f"{path} ({language}, 1280 px)")
    if language == "de":
        text = page.inner_text("body")  # type: ignore[attr-defined]
        shown = [run for run in english if run in text]
        assert not shown, f"English on the German {path}: {shown}"
    _in_language(phone, live_vault, language, path)
    assert_fits_a_phone(phone)


def _sign_in(page: object, live_vault: str, email: str) -> None:
    page.goto(f"{live_vault}/signin")  # type: ignore[attr-defined]
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", BROWSER_PASSWORD)  # type: ignore[attr-defined]
    page.click("form[action='/signin'] button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{live_vault}/profile")  # type: ignore[attr-defined]


@pytest.mark.parametrize("language", LANGUAGES)
def test_visitor_pages_are_accessible_and_fit_a_phone(
    live_vault: str, page, phone, language: str,
) -> None:
    english = english_with_german_translation()
    for path in VISITOR_PAGES:
        _check(page, phone, live_vault, language, path, english)
    page.goto(f"{live_vault}/signup")
    page.fill("#email", "someone@example.org")
    page.fill("#password", "one long password")
    page.fill("#password_confirm", "another long password")
    page.click("form[action='/signup'] button[type=submit]")
    invalid = page.locator("#password_confirm")
    assert invalid.get_attribute("aria-invalid") == "true"
    assert page.locator(f"#{invalid.get_attribute('aria-describedby')}").is_visible()
    assert_accessible(page, f"sign-up with a field error ({language})")


@pytest.mark.parametrize("language", LANGUAGES)
def test_customer_pages_are_accessible_and_fit_a_phone(
    live_vault: str, page, phone, language: str,
) -> None:
    english = english_with_german_translation()
    email = sign_up(page, live_vault, f"layout-{language}")
    _sign_in(phone, live_vault, email)
    for path in CUSTOMER_PAGES:
        _check(page, phone, live_vault, language, path, english)
    assert "Sign out" in page.inner_text("header") or "Abmelden" in page.inner_text("header")


def test_the_consent_screen_is_accessible_and_fits_a_phone_in_both_languages(
    live_vault: str, live_data_dir: str, page, phone,
) -> None:
    client_id, _secret = register_company(
        live_vault, live_data_dir, name="Nordlicht Energie", site="https://nordlicht.example",
        scopes=["profile.given_name:read=Address you by name", "marketing.email=Tariff news"])
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(secrets.token_urlsafe(48).encode()).digest()).decode().rstrip("=")
    consent = "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id,
        "redirect_uri": "https://nordlicht.example/cb",
        "scope": "profile.given_name:read marketing.email", "state": "s1",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    email = sign_up(page, live_vault, "consent")
    _sign_in(phone, live_vault, email)
    english = english_with_german_translation()
    for language in LANGUAGES:
        _check(page, phone, live_vault, language, consent, english)
    assert "Nordlicht Energie bittet um Zugriff" in page.inner_text("h1")
    assert "Ihre Angabe „Vorname“ lesen" in page.inner_text("main")


def test_the_phone_menu_opens_without_javascript_and_marks_the_page(
    live_vault: str, phone,
) -> None:
    email = sign_up(phone, live_vault, "menu")
    phone.goto(f"{live_vault}/export")
    menu = phone.locator("details.menu-narrow")
    assert phone.locator(".menu-wide").is_hidden()
    assert menu.locator("nav").is_hidden()
    menu.locator("summary").click()
    assert menu.locator("a[href='/connections']").is_visible()
    current = menu.locator("a[aria-current='page']")
    assert current.count() == 1
    assert current.get_attribute("href") == "/export"
    assert_fits_a_phone(phone)
    assert email


def test_the_first_tab_stop_skips_to_the_content(live_vault: str, page) -> None:
    page.goto(f"{live_vault}/signin")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.get_attribute("href") == "#content"
    assert skip.is_visible()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
