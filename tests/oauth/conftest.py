"""A registered company and a signed-in customer for every OAuth test."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.accounts.models import Account
from cmr_vault.runtime import Runtime
from tests.factories import Browser, make_customer
from tests.oauth.flows import Company, register_company


@pytest.fixture
def company(db_session: Session, runtime: Runtime) -> Company:
    return register_company(db_session, runtime)


@pytest.fixture
def customer(db_session: Session, runtime: Runtime) -> Account:
    return make_customer(db_session, runtime, email="ada@example.org",
                         profile={"email": "ada@example.org", "given_name": "Ada",
                                  "phone": "+44 20 7946 0000"})


@pytest.fixture
def browser(client: TestClient[Litestar], customer: Account) -> Browser:
    signed_in = Browser(client)
    assert signed_in.sign_in("ada@example.org").status_code == 303
    return signed_in
