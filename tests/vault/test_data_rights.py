"""Export and erasure: the customer's rights, end to end."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import make_url
from sqlmodel import Session, func, select

from cmr_vault.accounts.models import Account
from cmr_vault.audit.models import AuditEntry
from cmr_vault.crypto.field_cipher import DecryptionError
from cmr_vault.db.engine import make_engine
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from cmr_vault.vault import service as vault_service
from tests.factories import DEFAULT_PASSWORD, Browser
from tests.intents.conftest import NOTICE, allow_intents, publish, visible
from tests.oauth.flows import register_company


@pytest.fixture
def browser(client: TestClient[Litestar]) -> Browser:
    browser = Browser(client)
    browser.sign_up("rosa@example.org")
    browser.submit(
        "/profile",
        {
            "email": "rosa@example.org",
            "given_name": "Rosa",
            "interests": "books",
            "custom": "favourite: tea",
        },
    )
    return browser


def test_export_is_one_json_document_with_everything(browser: Browser) -> None:
    response = browser.submit("/export", {"password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    document = response.json()
    assert document["format"] == "cmr-vault/export/v1"
    assert document["profile"]["given_name"] == "Rosa"
    assert document["profile"]["interests"] == ["books"]
    assert document["profile"]["custom"] == {"favourite": "tea"}
    actions = {entry["action"] for entry in document["access_log"]}
    assert {"account.created", "profile.updated", "profile.exported"} <= actions


def test_export_holds_intents_offers_blocks_and_the_customers_own_app_address(
    browser: Browser, client: TestClient[Litestar], db_session: Session, runtime: Runtime,
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhook_allow_loopback": True})
    shop = register_company(db_session, runtime, name="Bike Shop", notice=NOTICE)
    allow_intents(browser, shop)
    publish(browser)
    intent = visible(client, shop)[0]
    offer = client.post(f"/api/v1/intents/{intent['intent_id']}/offers", headers=shop.auth(),
                        json={"title": "The Rainrider 3", "body": "Mudguards included.",
                              "value": "10 % off"}).json()
    browser.submit(f"/offers/{offer['offer_id']}/decline", {"block": "yes"}, page="/inbox")
    browser.submit("/preferences", {"webhook_url": "http://127.0.0.1:9/rosas-app"})

    document = browser.submit("/export", {"password": DEFAULT_PASSWORD}).json()

    [exported_intent] = document["intents"]["intents"]
    assert exported_intent["id"] == intent["intent_id"]
    assert (exported_intent["topic"], exported_intent["text"], exported_intent["budget"]) == (
        "bikes", "A commuter bike for rainy Hamburg", "up to 900 EUR")
    [exported_offer] = document["intents"]["offers"]
    assert (exported_offer["company"], exported_offer["status"], exported_offer["title"]) == (
        shop.client_id, "declined", "The Rainrider 3")
    assert document["intents"]["blocked_companies"][0]["company"] == shop.client_id
    assert document["marketing"]["push_endpoint"]["url"] == "http://127.0.0.1:9/rosas-app"


def test_export_needs_the_password_again(browser: Browser) -> None:
    response = browser.submit("/export", {"password": "wrong password"})
    assert response.status_code == 401
    assert "not correct" in response.text


def _copy_database(settings: Settings, tmp_path: Path) -> str | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return None
    copy = tmp_path / "before-erasure.db"
    with sqlite3.connect(url.database or "") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return f"sqlite:///{copy}"


def test_erasure_makes_even_an_earlier_database_copy_unreadable(
    browser: Browser, settings: Settings, runtime: Runtime, db_session: Session, tmp_path: Path
) -> None:
    account = db_session.exec(select(Account)).one()
    copy_url = _copy_database(settings, tmp_path) or settings.database_url
    copy_engine = make_engine(copy_url)
    with Session(copy_engine) as before:
        assert (
            vault_service.read_profile(
                before, cipher=runtime.cipher, account_id=account.id
            ).standard["given_name"]
            == "Rosa"
        )

    response = browser.submit(
        "/erase", {"confirm": "erase my data", "password": DEFAULT_PASSWORD}, page="/erase"
    )
    assert response.status_code == 200
    assert "erased" in response.text

    if copy_url != settings.database_url:
        with Session(copy_engine) as before, pytest.raises(DecryptionError):
            vault_service.read_profile(before, cipher=runtime.cipher, account_id=account.id)
    copy_engine.dispose()
    db_session.rollback()
    assert db_session.exec(select(func.count()).select_from(Account)).one() == 0
    assert runtime.data_keys.kek_usage() == {}
    erased = db_session.exec(select(AuditEntry).where(AuditEntry.action == "customer.erased")).one()
    assert "rosa" not in erased.model_dump_json().lower()


def test_erasure_needs_the_phrase_and_the_password(browser: Browser, db_session: Session) -> None:
    response = browser.submit("/erase", {"confirm": "yes", "password": "wrong password"})
    assert response.status_code == 400
    assert "to confirm" in response.text
    assert "not correct" in response.text
    assert db_session.exec(select(func.count()).select_from(Account)).one() == 1
    assert browser.client.get("/profile").status_code == 200
