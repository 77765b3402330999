"""Signing a company in to its dashboard the way its browser does."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import Browser
from tests.oauth.flows import Company


def company_browser(client: TestClient[Litestar], company: Company) -> Browser:
    """`client` signed in as `company` on the company sign-in page."""
    browser = Browser(client)
    response = browser.submit(
        "/company/signin", {"client_id": company.client_id, "client_secret": company.secret or ""}
    )
    assert response.status_code == 303, response.text
    return browser
