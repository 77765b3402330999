"""A company that may see bike intents and run product tests, customers, and their intents."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.runtime import Runtime
from tests.factories import Browser, make_customer
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, get_code, register_company

__all__ = ["browser", "company", "customer"]
NOTICE = {"profile.email:read": ["Send your order receipts"],
          "intents.bikes": ["Answer what you are looking for"],
          "programmes.product-tests": ["Invite you to test new bikes"]}


@pytest.fixture
def bike_shop(db_session: Session, runtime: Runtime) -> Company:
    return register_company(db_session, runtime, name="Bike Shop", notice=NOTICE)


@pytest.fixture
def stranger_shop(db_session: Session, runtime: Runtime) -> Company:
    return register_company(db_session, runtime, name="Stranger Shop", notice=NOTICE)


def publish(browser: Browser, *, topic: str = "bikes", to: str = "all",
            audience: list[str] | None = None, days: str = "30") -> Any:
    """Publish an intent through the portal form."""
    form: dict[str, Any] = {"topic": topic, "text": "A commuter bike for rainy Hamburg",
                            "budget": "up to 900 EUR", "valid_days": days, "to": to}
    if audience:
        form["audience"] = audience
    return browser.submit("/intents", form, page="/intents")


def visible(client: TestClient[Litestar], company: Company) -> list[dict[str, Any]]:
    """The intents a company's API lists."""
    response = client.get("/api/v1/intents", headers=company.auth())
    assert response.status_code == 200, response.text
    return list(response.json()["intents"])


def allow_intents(browser: Browser, company: Company) -> None:
    """The customer grants the company intents.bikes on the consent screen."""
    get_code(browser, company, scopes=["intents.bikes"], scope="intents.bikes")


def second_customer(db_session: Session, runtime: Runtime,
                    other_client: TestClient[Litestar], email: str = "bo@example.org") -> Browser:
    """Another customer, signed in on their own browser."""
    make_customer(db_session, runtime, email=email, profile={"email": email})
    other = Browser(other_client)
    assert other.sign_in(email).status_code == 303
    return other
