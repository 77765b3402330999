"""Pushes through the vault: decided, queued or deferred, re-decided at delivery, audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.audit.models import AuditEntry
from cmr_vault.marketing.models import Message
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import FrozenClock
from tests.factories import DEFAULT_PASSWORD, Browser
from tests.marketing.conftest import SALES, Mailbox, deliver, preferences_form
from tests.oauth.flows import Company
from tests.vault.test_no_plaintext_at_rest import _database_bytes


def _push(client: TestClient[Litestar], connected: dict[str, Any], channel: str = "inbox",
          key: str = "k1", topic: str = "sales") -> Any:
    return client.post("/api/v1/pushes", headers={"Authorization": f"Bearer {connected['token']}"},
                       json={"subject": connected["subject"], "channel": channel, "topic": topic,
                             "purpose": SALES, "title": "Winter sale",
                             "body": "Everything half price.", "idempotency_key": key})


def _opt_in(browser: Browser, shop: Company, **extra: str) -> Any:
    return browser.submit("/preferences", preferences_form(shop, inbox__optin="on", **extra))


def test_a_push_without_opt_in_is_refused_with_the_reason(
    mail_client: TestClient[Litestar], connected: dict[str, Any]
) -> None:
    response = _push(mail_client, connected)
    assert response.status_code == 403
    body = response.json()
    assert "push.not-opted-in" in body["errors"]
    assert "has not opted in to inbox messages" in body["errors"]["push.not-opted-in"]


def test_an_opted_in_inbox_push_is_queued_delivered_and_shown_in_the_inbox(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime,
) -> None:
    assert _opt_in(customer_browser, shop).status_code == 303
    response = _push(mail_client, connected)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert deliver(mail_runtime).delivered == 1
    inbox = customer_browser.client.get("/inbox")
    assert "Winter sale" in inbox.text and "Corner Shop" in inbox.text
    status = mail_client.get(f"/api/v1/pushes/{response.json()['message_id']}",
                             headers={"Authorization": f"Bearer {connected['token']}"}).json()
    assert status["status"] == "delivered"
    assert "ada@example.org" not in str(status)


def test_the_same_idempotency_key_never_sends_twice(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, db_session: Session,
) -> None:
    _opt_in(customer_browser, shop)
    first = _push(mail_client, connected).json()
    again = _push(mail_client, connected).json()
    assert again["message_id"] == first["message_id"] and again["repeated"] is True
    deliver(mail_runtime)
    deliver(mail_runtime)
    db_session.rollback()
    assert len(db_session.exec(select(Message)).all()) == 1


def test_in_quiet_hours_a_push_is_deferred_and_delivered_after_them(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, clock: FrozenClock, mailbox: tuple[Mailbox, int],
) -> None:
    customer_browser.submit("/preferences", preferences_form(
        shop, email__optin="on", email__quiet_start="08:00", email__quiet_end="18:00"))
    link = mailbox[0].links(r"http://127\.0\.0\.1:8000(/preferences/confirm/\S+)")[0]
    assert customer_browser.client.get(link).status_code == 200
    response = _push(mail_client, connected, channel="email")  # 10:00 Berlin: quiet
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "deferred"
    assert body["not_before"] == "2026-11-23T17:00:00+00:00"  # 18:00 in Berlin
    assert deliver(mail_runtime).delivered == 0
    clock.move_to(datetime(2026, 11, 23, 17, 0, 1, tzinfo=UTC))
    assert deliver(mail_runtime).delivered == 1
    sale = [m for m in mailbox[0].mails if m["Subject"] == "Winter sale"]
    assert len(sale) == 1 and sale[0]["To"] == "ada@example.org"


def test_past_the_daily_cap_a_push_is_refused(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime,
) -> None:
    _opt_in(customer_browser, shop, inbox__cap_day="1")
    assert _push(mail_client, connected, key="a").status_code == 202
    deliver(mail_runtime)
    refused = _push(mail_client, connected, key="b")
    assert refused.status_code == 403
    assert "push.cap-day" in refused.json()["errors"]


def test_a_revocation_after_queueing_stops_the_delivery(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, db_session: Session,
) -> None:
    _opt_in(customer_browser, shop)
    assert _push(mail_client, connected).status_code == 202
    customer_browser.submit(f"/connections/{connected['grant_id']}/revoke", {},
                            page="/connections")
    report = deliver(mail_runtime)
    assert (report.delivered, report.stopped) == (0, 1)
    db_session.rollback()
    assert db_session.exec(select(Message)).one().status == "refused"
    assert "Winter sale" not in customer_browser.client.get("/inbox").text


def test_an_email_arrives_with_one_click_unsubscribe_that_works(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, mailbox: tuple[Mailbox, int],
) -> None:
    customer_browser.submit("/preferences", preferences_form(shop, email__optin="on"))
    box = mailbox[0]
    assert box.mails[0]["Subject"].startswith("Confirm e-mail from")
    refused = _push(mail_client, connected, channel="email", key="before-confirm")
    assert "push.email-not-confirmed" in refused.json()["errors"]
    link = box.links(r"http://127\.0\.0\.1:8000(/preferences/confirm/\S+)")[0]
    customer_browser.client.get(link)
    clock_noon = _push(mail_client, connected, channel="email", key="after-confirm")
    assert clock_noon.status_code == 202, clock_noon.text
    deliver(mail_runtime)
    sale = box.mails[-1]
    assert sale["Subject"] == "Winter sale"
    assert sale["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(sale["List-Unsubscribe"]).strip().strip("<>")
    path = url.removeprefix("http://127.0.0.1:8000")
    one_click = mail_client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "unsubscribed" in one_click.text
    after = _push(mail_client, connected, channel="email", key="after-unsubscribe")
    assert "push.not-opted-in" in after.json()["errors"]


def test_consent_check_answers_without_sending(
    mail_client: TestClient[Litestar], connected: dict[str, Any], db_session: Session
) -> None:
    response = mail_client.post(
        "/api/v1/consent-check", headers={"Authorization": f"Bearer {connected['token']}"},
        json={"subject": connected["subject"], "channel": "inbox", "topic": "sales",
              "purpose": SALES})
    assert response.status_code == 200
    assert response.json()["allowed"] is False
    assert "push.not-opted-in" in response.json()["rule_ids"]
    db_session.rollback()
    assert db_session.exec(select(Message)).all() == []
    checks = db_session.exec(select(AuditEntry).where(AuditEntry.action == "push.checked")).all()
    assert len(checks) == 1


def test_every_decision_and_delivery_is_audited_with_rules_and_version(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, db_session: Session,
) -> None:
    _opt_in(customer_browser, shop)
    _push(mail_client, connected)
    deliver(mail_runtime)
    db_session.rollback()
    entries = db_session.exec(select(AuditEntry).where(
        AuditEntry.action.in_(["push.decided", "push.delivered"]))).all()  # type: ignore[attr-defined]
    assert [e.action for e in entries] == ["push.decided", "push.delivered"]
    assert all('"policy_version"' in e.details and '"rule_ids"' in e.details for e in entries)
    assert all("Winter sale" not in e.details for e in entries)


def test_a_push_to_another_subject_is_not_found(
    mail_client: TestClient[Litestar], connected: dict[str, Any]
) -> None:
    response = _push(mail_client, {**connected, "subject": "someone-else"})
    assert response.status_code == 404


def test_the_data_export_holds_connections_preferences_and_messages(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime,
) -> None:
    _opt_in(customer_browser, shop)
    _push(mail_client, connected)
    deliver(mail_runtime)
    response = customer_browser.submit("/export", {"password": DEFAULT_PASSWORD})
    document = response.json()
    connection = document["connections"][0]
    assert connection["company"]["name"] == "Corner Shop"
    assert [h["change"] for h in connection["history"]] == ["given"]
    assert document["marketing"]["preferences"][0]["opted_in"] is True
    message = document["marketing"]["messages"][0]
    assert (message["title"], message["status"]) == ("Winter sale", "delivered")


def test_preference_topics_and_message_content_are_sealed_at_rest(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, settings: Settings, tmp_path: Path,
) -> None:
    _opt_in(customer_browser, shop, inbox__topics="canarytopicqq, sales")
    _push(mail_client, connected, topic="sales")
    refused = _push(mail_client, connected, topic="gambling", key="k2")
    assert "push.topic-not-wanted" in refused.json()["errors"]
    assert "canarytopicqq" not in refused.text  # nor does the company learn the topics
    deliver(mail_runtime)
    page = customer_browser.client.get("/preferences")
    assert "canarytopicqq" in page.text  # the customer sees it; the database does not
    data = _database_bytes(settings, tmp_path)
    assert b"canarytopicqq" not in data
    assert b"Everything half price" not in data
    assert b"Europe/Berlin" not in data  # no quiet hours set: the zone did not matter
