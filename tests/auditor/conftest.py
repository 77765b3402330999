"""An auditor account, a company and a customer who used it."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Role
from cmr_vault.runtime import Runtime
from tests.factories import DEFAULT_PASSWORD, Browser
from tests.oauth.conftest import browser, company, customer

__all__ = ["browser", "company", "customer"]
AUDITOR_EMAIL = "auditor@example.org"


@pytest.fixture
def auditor_browser(db_session: Session, runtime: Runtime,
                    other_client: TestClient[Litestar]) -> Browser:
    keyring = runtime.keyring
    accounts_service.create_account(
        db_session, index_key=keyring.index_key, data_keys=runtime.data_keys,
        clock=runtime.clock, role=Role.AUDITOR, email=AUDITOR_EMAIL, password=DEFAULT_PASSWORD)
    db_session.commit()
    auditor = Browser(other_client)
    response = auditor.sign_in(AUDITOR_EMAIL)
    assert response.status_code == 303
    return auditor
