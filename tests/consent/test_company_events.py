"""Propagation: every change reaches the company's webhook, signed, retried, acknowledged."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select
from standardwebhooks import Webhook

from cmr_vault.consent.models import CompanyEvent, Grant
from cmr_vault.marketing.worker import event_pass
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.auditor.conftest import auditor_browser
from tests.conftest import ClockUnderTest, reads_real_time
from tests.factories import DEFAULT_PASSWORD, Browser
from tests.oauth.flows import Company, get_code, register_company

__all__ = ["auditor_browser"]


class Receiver:
    """A company's webhook endpoint on loopback that fails the first `failures` deliveries."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 503 if receiver.failures > 0 else 204
                receiver.failures -= 1
                receiver.received.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/consent-events"

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        """The deliveries answered 2xx."""
        return [(headers, body) for headers, body, status in self.received if status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=1)
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()


@pytest.fixture
@reads_real_time
def loopback_runtime(runtime: Runtime, settings: Settings) -> Runtime:
    """Loopback webhooks allowed; receivers check the signed timestamp against real time."""
    runtime.settings = settings.model_copy(update={"webhook_allow_loopback": True})
    return runtime


@pytest.fixture
def subscribed(client: TestClient[Litestar], company: Company, receiver: Receiver,
               loopback_runtime: Runtime) -> str:
    """The company registered its webhook; returns the signing secret."""
    response = client.put("/api/v1/webhook", json={"url": receiver.url}, headers=company.auth())
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


def _revoke(browser: Browser, company: Company, db_session: Session) -> Grant:
    get_code(browser, company, scopes=["profile.email:read"])
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    browser.submit(f"/connections/{grant.id}/revoke", {}, page="/connections")
    return grant


def test_a_revocation_reaches_the_company_signed_and_retried_until_it_answers(
    browser: Browser, company: Company, db_session: Session, subscribed: str,
    receiver: Receiver, loopback_runtime: Runtime, clock: ClockUnderTest,
) -> None:
    receiver.failures = 2
    grant = _revoke(browser, company, db_session)

    first = event_pass(loopback_runtime)
    assert (first.delivered, first.failed) == (0, 2)
    assert event_pass(loopback_runtime).failed == 0  # not due again before the retry time
    clock.advance(seconds=6)
    assert event_pass(loopback_runtime).delivered == 2

    delivered = receiver.accepted()
    payloads = [Webhook(subscribed).verify(body, headers) for headers, body in delivered]
    assert [p["type"] for p in payloads] == ["grant.given", "grant.revoked"]
    revoked = payloads[1]["data"]
    assert revoked["subject"] == grant.pairwise_subject
    assert revoked["status"] == "revoked"
    assert revoked["dpv_status"] == "dpv:ConsentWithdrawn"
    assert "ada@example.org" not in json.dumps(payloads)
    assert len(receiver.received) == 4


def test_a_forged_or_altered_delivery_fails_the_signature_check(
    browser: Browser, company: Company, db_session: Session, subscribed: str,
    receiver: Receiver, loopback_runtime: Runtime,
) -> None:
    receiver.failures = 0
    _revoke(browser, company, db_session)
    event_pass(loopback_runtime)
    headers, body = receiver.accepted()[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(subscribed).verify(body.replace(b"given", b"renew"), headers)


def test_an_event_shows_as_acknowledged_once_the_company_confirms_it(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    subscribed: str, receiver: Receiver, loopback_runtime: Runtime, auditor_browser: Browser,
) -> None:
    receiver.failures = 0
    _revoke(browser, company, db_session)
    event_pass(loopback_runtime)
    pending = client.get("/api/v1/events", headers=company.auth()).json()["events"]
    assert [e["type"] for e in pending] == ["grant.given", "grant.revoked"]
    assert all(e["delivered_at"] for e in pending)
    backlog = auditor_browser.client.get("/api/v1/auditor/unacknowledged").json()["companies"]
    assert backlog[0]["client_id"] == company.client_id
    assert backlog[0]["unacknowledged"] == 2

    for event in pending:
        answer = client.post(f"/api/v1/events/{event['id']}/ack", headers=company.auth())
        assert answer.status_code == 200
        assert answer.json()["acknowledged_at"]

    assert client.get("/api/v1/events", headers=company.auth()).json()["events"] == []
    assert auditor_browser.client.get("/api/v1/auditor/unacknowledged").json()["companies"] == []
    page = auditor_browser.client.get("/auditor/reports").text
    assert "Every company has acknowledged every change." in page
    log = auditor_browser.client.get("/api/v1/auditor/entries",
                                     params={"action": "event.acknowledged"}).json()
    assert len(log["entries"]) == 2


def test_a_company_cannot_see_or_acknowledge_another_companys_events(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    runtime: Runtime,
) -> None:
    other = register_company(db_session, runtime, name="Other Shop")
    _revoke(browser, company, db_session)
    db_session.rollback()
    event = db_session.exec(select(CompanyEvent)).first()
    assert event is not None
    assert client.get("/api/v1/events", headers=other.auth()).json()["events"] == []
    answer = client.post(f"/api/v1/events/{event.id}/ack", headers=other.auth())
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_webhook_on_a_private_address_is_refused(
    client: TestClient[Litestar], company: Company
) -> None:
    response = client.put("/api/v1/webhook", json={"url": "https://127.0.0.1/hook"},
                          headers=company.auth())
    assert response.status_code == 403
    assert "private address" in response.json()["detail"] + json.dumps(response.json())


def test_erasing_the_account_tells_every_company_that_held_a_grant(
    browser: Browser, company: Company, db_session: Session,
) -> None:
    get_code(browser, company, scopes=["profile.email:read"])
    browser.submit("/erase", {"confirm": "erase my data", "password": DEFAULT_PASSWORD},
                   page="/erase")
    db_session.rollback()
    types = [e.type for e in db_session.exec(select(CompanyEvent)).all()]
    assert "customer.erased" in types
