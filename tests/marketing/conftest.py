"""A loopback SMTP server, a company allowed to market, and a customer who opted in."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage as Mail
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.app import create_app
from cmr_vault.consent.models import Grant
from cmr_vault.marketing.worker import deliver_pass
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import Browser, make_customer
from tests.oauth.flows import Company, get_code, redeem, register_company

SALES = "Tell you about sales"
NOTICE = {"marketing.email": [SALES], "marketing.inbox": [SALES], "marketing.webhook": [SALES],
          "profile.email:read": ["Send your order receipts"]}


class Mailbox:
    """Collects every message the SMTP server receives."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def links(self, pattern: str) -> list[str]:
        found = []
        for mail in self.mails:
            found += re.findall(pattern, mail.get_content())
        return found


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def mail_runtime(runtime: Runtime, settings: Settings, mailbox: tuple[Mailbox, int]) -> Runtime:
    runtime.settings = settings.model_copy(update={"smtp_host": "127.0.0.1",
                                                   "smtp_port": mailbox[1]})
    return runtime


@pytest.fixture
def mail_client(mail_runtime: Runtime) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(mail_runtime.settings, runtime=mail_runtime),
                    base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def shop(db_session: Session, mail_runtime: Runtime) -> Company:
    return register_company(db_session, mail_runtime, name="Corner Shop", notice=NOTICE)


@pytest.fixture
def customer_browser(db_session: Session, mail_runtime: Runtime,
                     mail_client: TestClient[Litestar]) -> Browser:
    make_customer(db_session, mail_runtime, email="ada@example.org",
                  profile={"email": "ada@example.org", "time_zone": "Europe/Berlin"})
    browser = Browser(mail_client)
    assert browser.sign_in("ada@example.org").status_code == 303
    return browser


@pytest.fixture
def connected(customer_browser: Browser, shop: Company, db_session: Session) -> dict[str, Any]:
    """The customer granted e-mail and inbox marketing; returns token and subject."""
    client = customer_browser.client
    code, verifier = get_code(customer_browser, shop,
                              scopes=["marketing.email", "marketing.inbox"],
                              scope="marketing.email marketing.inbox")
    tokens = redeem(client, shop, code, verifier).json()
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    return {"token": tokens["access_token"], "subject": grant.pairwise_subject,
            "grant_id": grant.id}


def preferences_form(shop: Company, **fields: str) -> dict[str, str]:
    """The preference-center form, with per-channel fields named like the page's inputs."""
    form: dict[str, str] = {}
    for name, value in fields.items():
        channel, _, field = name.partition("__")
        key = "*:*" if channel == "all" else f"{shop.client_id}:{channel}"
        if field == "topics":  # typed as "other topics", as a person adds a new one
            form[f"topics_mode:{key}"] = "chosen" if value else "any"
            form[f"topics_more:{key}"] = value
        else:
            form[f"{field}:{key}"] = value
    return form


def deliver(runtime: Runtime) -> Any:
    """Run one pass of the delivery worker now."""
    return deliver_pass(runtime)
