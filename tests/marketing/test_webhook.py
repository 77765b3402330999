"""Pushes to the customer's own app: a signed webhook to an address only the vault knows."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.accounts import service as accounts_service
from cmr_vault.marketing import service as marketing_service
from cmr_vault.marketing.delivery import UnsafeEndpoint, check_endpoint
from cmr_vault.marketing.models import Message
from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.marketing.conftest import SALES, Mailbox, deliver, preferences_form
from tests.oauth.flows import Company, get_code, redeem

received: list[tuple[dict[str, str], bytes]] = []


class _App(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append((dict(self.headers), body))
        self.send_response(500 if "failing" in self.path else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        del args


@pytest.fixture
def app_endpoint() -> Iterator[str]:
    received.clear()
    server = HTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/inbox"
    server.shutdown()


@pytest.fixture
def loopback_runtime(mail_runtime: Runtime) -> Runtime:
    mail_runtime.settings = mail_runtime.settings.model_copy(
        update={"webhook_allow_loopback": True})
    return mail_runtime


def test_a_webhook_push_arrives_signed_and_the_company_never_sees_the_address(
    loopback_runtime: Runtime, mail_client: TestClient[Litestar], customer_browser: Browser,
    shop: Company, db_session: Session, app_endpoint: str,
) -> None:
    code, verifier = get_code(customer_browser, shop, scopes=["marketing.webhook"],
                              scope="marketing.webhook")
    token = redeem(mail_client, shop, code, verifier).json()["access_token"]
    page = customer_browser.submit("/preferences", {
        **preferences_form(shop, webhook__optin="on"), "webhook_url": app_endpoint})
    secret = re.search(r"<code>([A-Za-z0-9_-]{40,})</code>", page.text)
    assert secret, page.text
    subject = mail_client.get("/api/v1/grants", headers=shop.auth()).json()["grants"][0][
        "subject"]
    pushed = mail_client.post("/api/v1/pushes", headers={"Authorization": f"Bearer {token}"},
                              json={"subject": subject, "channel": "webhook", "topic": "sales",
                                    "purpose": SALES, "title": "Flash sale", "body": "Now.",
                                    "idempotency_key": "w1"})
    assert pushed.status_code == 202, pushed.text
    assert app_endpoint not in pushed.text
    assert deliver(loopback_runtime).delivered == 1
    headers, body = received[0]
    stamp, signed = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})",
                                 headers["X-CMR-Vault-Signature"]).groups()  # type: ignore[union-attr]
    expected = hmac.new(secret.group(1).encode(), f"{stamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed, expected)
    assert json.loads(body)["title"] == "Flash sale"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "https://10.0.0.8/x",
                                 "https://169.254.169.254/latest", "ftp://example.org/x",
                                 "https://user:pw@example.org/x",
                                 "https://" + "a" * 64 + ".example/x",
                                 "https://example.org:99999/x"])
def test_internal_or_unsafe_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeEndpoint):
        check_endpoint(url)


def test_an_unsafe_endpoint_is_explained_on_the_page_and_not_saved(
    customer_browser: Browser, db_session: Session, mail_runtime: Runtime,
) -> None:
    page = customer_browser.submit("/preferences", {"webhook_url": "https://10.1.2.3/hook"})
    assert page.status_code == 400
    assert "private address" in page.text
    db_session.rollback()
    account = accounts_service.find_by_email(
        db_session, index_key=mail_runtime.keyring.index_key, email="ada@example.org")
    assert account is not None
    assert not marketing_service.has_endpoint(db_session, account.id)


def test_no_library_logger_writes_the_customer_app_address_or_e_mail(
    loopback_runtime: Runtime, mail_client: TestClient[Litestar], customer_browser: Browser,
    shop: Company, app_endpoint: str, mailbox: tuple[Mailbox, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    canary_app = app_endpoint + "-canary-app-5e1d"
    code, verifier = get_code(customer_browser, shop,
                              scopes=["marketing.webhook", "marketing.email"],
                              scope="marketing.webhook marketing.email")
    token = redeem(mail_client, shop, code, verifier).json()["access_token"]
    customer_browser.submit("/preferences", {
        **preferences_form(shop, webhook__optin="on", email__optin="on"),
        "webhook_url": canary_app})
    confirm = mailbox[0].links(r"http://127\.0\.0\.1:8000(/preferences/confirm/\S+)")[0]
    assert customer_browser.client.get(confirm).status_code == 200
    subject = mail_client.get("/api/v1/grants", headers=shop.auth()).json()["grants"][0][
        "subject"]
    for channel in ("webhook", "email"):
        pushed = mail_client.post(
            "/api/v1/pushes", headers={"Authorization": f"Bearer {token}"},
            json={"subject": subject, "channel": channel, "topic": "sales", "purpose": SALES,
                  "title": "Flash sale", "body": "Now.", "idempotency_key": channel})
        assert pushed.status_code == 202, pushed.text

    assert deliver(loopback_runtime).delivered == 2

    # "mail.log" is the test's own receiving SMTP server, not the vault.
    logged = "\n".join(record.getMessage() for record in caplog.records
                       if not record.name.startswith("mail."))
    for needle in ("canary-app-5e1d", "127.0.0.1:" + app_endpoint.split(":")[2].split("/")[0],
                   "ada@example.org", token):
        assert needle not in logged


def test_a_failed_webhook_push_leaves_no_app_address_in_the_outbox(
    loopback_runtime: Runtime, mail_client: TestClient[Litestar], customer_browser: Browser,
    shop: Company, app_endpoint: str, db_session: Session,
) -> None:
    code, verifier = get_code(customer_browser, shop, scopes=["marketing.webhook"],
                              scope="marketing.webhook")
    token = redeem(mail_client, shop, code, verifier).json()["access_token"]
    customer_browser.submit("/preferences", {
        **preferences_form(shop, webhook__optin="on"),
        "webhook_url": app_endpoint + "-failing-canary-9b2c"})
    subject = mail_client.get("/api/v1/grants", headers=shop.auth()).json()["grants"][0][
        "subject"]
    pushed = mail_client.post("/api/v1/pushes", headers={"Authorization": f"Bearer {token}"},
                              json={"subject": subject, "channel": "webhook", "topic": "sales",
                                    "purpose": SALES, "title": "Flash sale", "body": "Now.",
                                    "idempotency_key": "f1"})
    assert pushed.status_code == 202, pushed.text

    assert deliver(loopback_runtime).delivered == 0

    db_session.rollback()
    message = db_session.exec(select(Message)).one()
    assert message.attempts == 1
    assert message.last_error == "HTTPStatusError: HTTP 500"
