"""Hostile input gets a clear error, bounded memory, and changes nothing."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import Browser


def test_oversized_body_is_refused_with_413(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    token = browser.csrf_token("/signup")
    response = client.post("/signup", content=b"email=" + b"a" * 2_000_000,
                           headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "X-CSRFToken": token})
    assert response.status_code == 413


def test_invalid_utf8_in_a_form_is_a_clear_error(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    token = browser.csrf_token("/signin")
    response = client.post("/signin", content=b"email=%FF%FE&password=x&_csrf_token=" +
                           token.encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code in {400, 401}
    assert response.status_code != 500


def test_unexpected_content_type_is_refused(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    token = browser.csrf_token("/signin")
    response = client.post("/signin", content=b'{"email": "a"}',
                           headers={"Content-Type": "application/json", "X-CSRFToken": token})
    assert 400 <= response.status_code < 500
