"""Which language a person reads: the switch, the browser's wish, and English otherwise."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from cmr_vault.i18n import gettext, use_language
from cmr_vault.i18n.web import language_from_profile
from tests.factories import Browser

GERMAN_BROWSER = {"Accept": "text/html", "Accept-Language": "de-DE,de;q=0.9,en;q=0.8"}


def test_a_browser_that_asks_for_german_gets_german(client: TestClient[Litestar]) -> None:
    page = client.get("/signin", headers=GERMAN_BROWSER).text
    assert '<html lang="de">' in page
    assert "Zum Inhalt springen" in page
    assert "Skip to content" not in page


def test_a_browser_that_asks_for_nothing_we_speak_gets_english(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/signin", headers={"Accept-Language": "fr-FR, ja;q=0.5"}).text
    assert '<html lang="en">' in page
    assert "Skip to content" in page


def test_english_is_chosen_when_preferred_over_german(client: TestClient[Litestar]) -> None:
    page = client.get("/signin", headers={"Accept-Language": "de;q=0.3, en-GB"}).text
    assert '<html lang="en">' in page


def test_the_language_switch_is_remembered_and_returns_to_the_page(
    client: TestClient[Litestar],
) -> None:
    switched = client.get("/language/de?next=/signup", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/signup"
    page = client.get("/signup", headers={"Accept-Language": "en"}).text
    assert '<html lang="de">' in page
    client.get("/language/en?next=/signup")
    assert '<html lang="en">' in client.get("/signup", headers={"Accept-Language": "de"}).text


def test_the_switch_never_sends_anyone_to_another_site(client: TestClient[Litestar]) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        switched = client.get(f"/language/de?next={target}", follow_redirects=False)
        assert switched.headers["location"] == "/"


def test_an_unknown_language_changes_nothing(client: TestClient[Litestar]) -> None:
    switched = client.get("/language/xx?next=/signin", follow_redirects=False)
    assert "cmr_lang" not in switched.headers.get("set-cookie", "")


def test_every_page_links_to_the_other_language_without_javascript(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/signin?next=/connections").text
    assert 'href="/language/de?next=/signin%3Fnext%3D/connections"' in page
    assert 'lang="de"' in page


def test_error_pages_speak_the_chosen_language(client: TestClient[Litestar]) -> None:
    page = client.get("/no-such-page", headers=GERMAN_BROWSER).text
    assert '<html lang="de">' in page


def test_a_signed_in_customer_reads_the_profile_language(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    email = browser.sign_up()
    browser.submit("/profile", {"email": email, "locale": "de-AT"})
    client.cookies.clear()
    browser.sign_in(email)
    assert '<html lang="de">' in client.get("/profile", headers={"Accept-Language": "en"}).text


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("de", "de"),
        ("de-DE", "de"),
        ("de-CH", "de"),
        ("en-US", "en"),
        ("fr", None),
        ("", None),
        ("not a tag", None),
    ],
)
def test_profile_language_tags_map_to_a_language_the_vault_speaks(
    tag: str,
    language: str | None,
) -> None:
    assert language_from_profile(tag) == language


def test_python_strings_follow_the_language_in_use() -> None:
    assert gettext("Sign out") == "Sign out"
    with use_language("de"):
        assert gettext("Sign out") == "Abmelden"
    assert gettext("Sign out") == "Sign out"
