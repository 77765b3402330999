"""Two vault instances on one database: what one changes, the other obeys on its next request.

Each instance is a process of its own in production (workers, hosts) with its own memory of
unwrapped data keys; here each has its own `Runtime` and app. The customer acts through the
first; the company reads through the second, which has just read (and so remembers the key).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.accounts.models import Account
from cmr_vault.app import create_app
from cmr_vault.consent.models import Grant
from cmr_vault.crypto.data_keys import DataKeyMissingError
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import BASE_URL, ClockUnderTest
from tests.factories import DEFAULT_PASSWORD, Browser
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, get_code, redeem

__all__ = ["browser", "company", "customer"]
RECEIPTS = "Send your order receipts"


@pytest.fixture
def second_runtime(settings: Settings, clock: ClockUnderTest) -> Iterator[Runtime]:
    """Another instance's collaborators: same databases and keys, its own memory."""
    runtime = Runtime.build(settings, clock=clock)
    yield runtime
    runtime.dispose()


@pytest.fixture
def second_instance(settings: Settings, second_runtime: Runtime) -> Iterator[TestClient[Litestar]]:
    """The company's requests go here; the customer's go to the first instance."""
    with TestClient(create_app(settings, runtime=second_runtime), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def access(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> dict[str, Any]:
    """A token for e-mail only, and the company's pairwise subject for the customer."""
    code, verifier = get_code(browser, company, scopes=["profile.email:read"], expiry="30d")
    tokens = redeem(client, company, code, verifier).json()
    db_session.rollback()
    subject = db_session.exec(select(Grant)).one().pairwise_subject
    return {"token": tokens["access_token"], "subject": subject}


def _read(client: TestClient[Litestar], access: dict[str, Any]) -> Any:
    return client.get(
        f"/api/v1/subjects/{access['subject']}/profile",
        params={"fields": "email", "purpose": RECEIPTS},
        headers={"Authorization": f"Bearer {access['token']}"},
    )


def test_erasure_through_one_instance_stops_reads_and_keys_in_another_at_once(
    browser: Browser,
    second_instance: TestClient[Litestar],
    second_runtime: Runtime,
    access: dict[str, Any],
    db_session: Session,
) -> None:
    account_id = db_session.exec(select(Account.id)).one()
    for _ in range(2):  # the second read opens the field with the key it remembered
        answer = _read(second_instance, access)
        assert answer.status_code == 200, answer.text
        assert answer.json()["fields"] == {"email": "ada@example.org"}

    erased = browser.submit(
        "/erase", {"confirm": "erase my data", "password": DEFAULT_PASSWORD}, page="/erase"
    )
    assert erased.status_code == 200

    refused = _read(second_instance, access)
    assert refused.status_code == 401
    assert "ada@example.org" not in refused.text
    # Even asked directly, the instance that held the unwrapped key no longer hands it out.
    with pytest.raises(DataKeyMissingError):
        second_runtime.data_keys.for_decryption(account_id, 1)


def test_revocation_through_one_instance_stops_the_next_read_in_another(
    browser: Browser,
    second_instance: TestClient[Litestar],
    access: dict[str, Any],
    db_session: Session,
) -> None:
    assert _read(second_instance, access).status_code == 200
    grant = db_session.exec(select(Grant)).one()
    browser.submit(f"/connections/{grant.id}/revoke", {}, page="/connections")
    refused = _read(second_instance, access)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_a_key_version_erased_elsewhere_is_never_served_from_memory(
    runtime: Runtime,
    second_runtime: Runtime,
    customer: Account,
) -> None:
    remembered = second_runtime.data_keys.for_decryption(customer.id, 1)
    assert second_runtime.data_keys.for_decryption(customer.id, 1) == remembered

    runtime.data_keys.destroy(customer.id, now=runtime.clock.now())

    with pytest.raises(DataKeyMissingError):
        second_runtime.data_keys.for_decryption(customer.id, 1)
