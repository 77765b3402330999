"""Error pages a person can act on: the menu stays, the page says what happened and that
nothing was saved, and an expired form comes back with what was typed, except passwords."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import CSRF_FIELD, Browser

GERMAN = {"Accept-Language": "de"}


def _token_in(html: str) -> str:
    match = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_a_missing_page_keeps_the_signed_in_menu(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    browser.sign_up()
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert "We could not find this page" in page.text
    assert 'href="/connections"' in page.text
    assert "Sign out" in page.text
    assert 'href="/signin' not in page.text
    assert "Back to your vault" in page.text


def test_sign_out_works_from_an_error_page(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    browser.sign_up()
    page = client.get("/no-such-page").text
    signed_out = client.post("/signout", data={CSRF_FIELD: _token_in(page)}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert client.get("/profile", follow_redirects=False).status_code == 303


def test_every_missing_thing_looks_the_same(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    browser.sign_up()
    for path in ("/no-such-page", "/static/no-such.css", "/receipts/no-such-receipt"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "We could not find this page" in page.text, path
        assert '<link rel="stylesheet" href="/static/vault.css">' in page.text, path


def test_a_missing_page_in_german(client: TestClient[Litestar]) -> None:
    page = client.get("/no-such-page", headers={"Accept": "text/html", **GERMAN}).text
    assert "Diese Seite gibt es nicht" in page
    assert "We could not find" not in page


def test_an_expired_profile_form_comes_back_with_what_was_typed(
    client: TestClient[Litestar],
) -> None:
    browser = Browser(client)
    email = browser.sign_up()
    typed = {"email": email, "given_name": "Ada", "locality": "Zürich", CSRF_FIELD: "stale"}
    refused = client.post("/profile", data=typed)
    assert refused.status_code == 403
    assert "This form had expired, so nothing was saved" in refused.text
    assert 'value="Ada"' in refused.text
    assert 'value="Zürich"' in refused.text
    assert 'value="Ada"' not in client.get("/profile").text  # nothing saved
    again = client.post(
        "/profile", data={**typed, CSRF_FIELD: _token_in(refused.text)}, follow_redirects=True
    )
    assert 'value="Ada"' in again.text


def test_an_expired_sign_in_keeps_the_e_mail_but_never_the_password(
    client: TestClient[Litestar],
) -> None:
    client.headers["Accept"] = "text/html"
    refused = client.post(
        "/signin",
        data={"email": "ada@example.org", "password": "a secret password", CSRF_FIELD: "stale"},
    )
    assert refused.status_code == 403
    assert 'value="ada@example.org"' in refused.text
    assert "a secret password" not in refused.text


def test_an_expired_form_that_acts_at_once_is_not_filled_in_again(
    client: TestClient[Litestar],
) -> None:
    browser = Browser(client)
    browser.sign_up()
    refused = client.post(
        "/connections/some-grant/revoke", data={"scope": "profile:read", CSRF_FIELD: "stale"}
    )
    assert refused.status_code == 403
    assert "This form had expired" in refused.text
    assert "Nothing was saved and nothing was changed." in refused.text
    assert "profile:read" not in refused.text
    assert "Sign out" in refused.text


def test_api_callers_still_get_a_problem_document_for_a_refused_form(
    client: TestClient[Litestar],
) -> None:
    refused = client.post(
        "/signin", data={"email": "x@example.org"}, headers={"Accept": "application/json"}
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_a_field_error_is_tied_to_its_input(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    page = browser.submit(
        "/signup",
        {
            "email": "new@example.org",
            "password": "long enough pw",
            "password_confirm": "another long pw",
        },
    ).text
    field = re.search(r'<input id="password_confirm"[^>]*>', page)
    assert field
    assert 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="password_confirm-error"' in field.group(0)
    assert 'id="password_confirm-error">The two passwords differ.' in page
    assert "aria-invalid" not in re.search(r'<input id="email"[^>]*>', page).group(0)
