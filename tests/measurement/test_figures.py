"""Company figures: aggregates only, and nothing below the k-anonymity threshold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.app import create_app
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import Browser, make_customer
from tests.measurement.conftest import company_browser
from tests.oauth.flows import Company, get_code, register_company

NOTICE = {"profile.email:read": ["Send your order receipts"],
          "marketing.inbox": ["Tell you about sales"]}


@pytest.fixture
def k3_client(runtime: Runtime, settings: Settings) -> Iterator[TestClient[Litestar]]:
    """The vault with figures suppressed below 3."""
    runtime.settings = settings.model_copy(update={"k_anonymity_threshold": 3})
    with TestClient(create_app(runtime.settings, runtime=runtime),
                    base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def shop(db_session: Session, runtime: Runtime) -> Company:
    return register_company(db_session, runtime, name="Figures Shop", notice=NOTICE)


def _customers_grant(db_session: Session, runtime: Runtime, client: TestClient[Litestar],
                     shop: Company, count: int) -> list[Browser]:
    browsers = []
    for n in range(count):
        email = f"c{n}@example.org"
        make_customer(db_session, runtime, email=email, profile={"email": email})
        browser = Browser(client)
        assert browser.sign_in(email).status_code == 303
        get_code(browser, shop, scopes=list(NOTICE), scope=" ".join(NOTICE))
        browser.client.cookies.clear()
        browsers.append(browser)
    return browsers


def test_no_figure_below_the_threshold_is_shown(
    k3_client: TestClient[Litestar], shop: Company, db_session: Session, runtime: Runtime
) -> None:
    _customers_grant(db_session, runtime, k3_client, shop, 2)

    figures = k3_client.get("/api/v1/measurement", headers=shop.auth()).json()

    assert figures["suppressed_below"] == 3
    assert figures["grants"]["given"] is None
    assert figures["grants"]["revoked"] == 0
    assert figures["opt_in_rates"] == {"inbox": None}


def test_figures_at_the_threshold_are_shown_as_counts_and_rates(
    k3_client: TestClient[Litestar], shop: Company, db_session: Session, runtime: Runtime
) -> None:
    _customers_grant(db_session, runtime, k3_client, shop, 3)

    figures = k3_client.get("/api/v1/measurement", headers=shop.auth()).json()

    assert figures["grants"]["given"] == 3
    assert figures["opt_in_rates"] == {"inbox": 0.0}
    page = company_browser(k3_client, shop).client.get("/company/dashboard")
    assert page.status_code == 200
    assert "<svg" in page.text and "Figures Shop" in page.text


def test_the_figures_name_no_customer(
    k3_client: TestClient[Litestar], shop: Company, db_session: Session, runtime: Runtime
) -> None:
    _customers_grant(db_session, runtime, k3_client, shop, 3)
    text = k3_client.get("/api/v1/measurement", headers=shop.auth()).text
    assert "@example.org" not in text
    assert "subject" not in text


def test_the_dashboard_sends_a_stranger_to_the_company_sign_in(
    k3_client: TestClient[Litestar], shop: Company
) -> None:
    response = k3_client.get("/company/dashboard", headers=shop.auth(), follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/company/signin"


def test_a_company_sees_only_its_own_figures(
    k3_client: TestClient[Litestar], shop: Company, db_session: Session, runtime: Runtime
) -> None:
    _customers_grant(db_session, runtime, k3_client, shop, 3)
    db_session.rollback()
    other = register_company(db_session, runtime, name="Other Shop", notice=NOTICE)
    figures = k3_client.get("/api/v1/measurement", headers=other.auth()).json()
    assert figures["grants"]["given"] == 0
    assert figures["opt_in_rates"] == {}
