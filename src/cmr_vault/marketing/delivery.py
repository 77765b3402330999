"""Delivery channels: where an allowed message goes. The company never sees the address.

Each channel implements `deliver(envelope)`; raising means "try again later". The in-vault inbox
needs no transport (a delivered inbox message is simply shown on the customer's Inbox page);
e-mail goes out over SMTP with RFC 8058 one-click unsubscribe headers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True)
class Envelope:
    """One message ready to go: content, the customer's address, the unsubscribe link."""

    message_id: str
    company_name: str
    address: str
    subject: str
    body: str
    unsubscribe_url: str
    signing_secret: str = ""


class DeliveryChannel(Protocol):
    """A way to reach the customer."""

    def deliver(self, envelope: Envelope) -> None:
        """Hand the message over; raise to have it retried with back-off."""


class InboxChannel:
    """The customer's inbox in the vault: storing the message as delivered is the delivery."""

    def deliver(self, envelope: Envelope) -> None:
        """Nothing to send: the Inbox page shows delivered inbox messages."""


@dataclass(frozen=True)
class AccountMail:
    """A message from the vault itself to an account holder (a reset or confirmation link):
    no company, no unsubscribe link, in the recipient's language."""

    address: str
    subject: str
    body: str
    language: str = "en"


class AccountMailer(Protocol):
    """A way to send the vault's own messages to account holders."""

    def send(self, mail: AccountMail) -> None:
        """Hand the message over; raise when it could not be."""


class MemoryMailer:
    """Keeps account mails in memory instead of sending them (the tests' mailer: set as
    `Runtime.account_mailer_override`)."""

    def __init__(self) -> None:
        self.sent: list[AccountMail] = []

    def send(self, mail: AccountMail) -> None:
        """Remember the message."""
        self.sent.append(mail)


@dataclass(frozen=True)
class SmtpChannel:
    """E-mail through an SMTP relay, with `List-Unsubscribe` and one-click POST (RFC 8058)."""

    host: str
    port: int
    sender: str
    starttls: bool = False
    timeout: float = 10.0

    def deliver(self, envelope: Envelope) -> None:
        """Send one e-mail; SMTP errors propagate so the outbox retries."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = envelope.address
        mail["Subject"] = envelope.subject
        mail["Message-ID"] = make_msgid(idstring=envelope.message_id)
        mail["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(
            f"{envelope.body}\n\n--\nSent by {envelope.company_name} through your CMR Vault.\n"
            f"Unsubscribe: {envelope.unsubscribe_url}\n"
        )
        self._transmit(mail)

    def send(self, account_mail: AccountMail) -> None:
        """Send one of the vault's own messages (an `AccountMailer`); SMTP errors propagate."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = account_mail.address
        mail["Subject"] = account_mail.subject
        mail["Message-ID"] = make_msgid()
        # RFC 3834: automatic replies (vacation notices) should not answer this message.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(account_mail.body)
        mail["Content-Language"] = account_mail.language  # after: set_content drops Content-*
        self._transmit(mail)

    def _transmit(self, mail: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            smtp.send_message(mail)


def failure_reason(exc: Exception) -> str:
    """What went wrong, for the outbox row: the error type and any HTTP status, never the
    message text (httpx's names the customer's app address, smtplib's the e-mail address)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{type(exc).__name__}: HTTP {exc.response.status_code}"
    return type(exc).__name__


class UnsafeEndpoint(ValueError):
    """A webhook URL the vault will not call (not https, or an internal address)."""


def check_endpoint(url: str, *, allow_loopback: bool = False) -> None:
    """Refuse URLs that would let a customer aim the vault at its own network (SSRF).

    Every address the host name resolves to must be public; plain http only to loopback, and
    loopback only when the operator allows it (tests, a single-machine setup).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
        raise UnsafeEndpoint("use an https URL without user name or password")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeEndpoint(f"{parts.hostname} does not resolve") from exc
    except (UnicodeError, ValueError) as exc:  # a DNS label over 63 characters, a port > 65535
        raise UnsafeEndpoint("not a host name and port that can be resolved") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_loopback and allow_loopback:
            continue
        if not address.is_global:
            raise UnsafeEndpoint(f"{parts.hostname} points at a private address")
    if parts.scheme == "http" and not allow_loopback:
        raise UnsafeEndpoint("use https")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over "timestamp.body", hex: what the receiving app recomputes to verify."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookChannel:
    """A signed JSON POST to the customer's own app (the address is their push endpoint)."""

    allow_loopback: bool = False
    timeout: float = 5.0

    def deliver(self, envelope: Envelope) -> None:
        """POST the message; a non-2xx answer or an unsafe URL raises, so the outbox retries."""
        check_endpoint(envelope.address, allow_loopback=self.allow_loopback)
        body = json.dumps(
            {
                "message_id": envelope.message_id,
                "from": envelope.company_name,
                "title": envelope.subject,
                "body": envelope.body,
                "unsubscribe_url": envelope.unsubscribe_url,
            }
        ).encode()
        stamp = int(time.time())
        signed = signature(envelope.signing_secret, stamp, body)
        response = httpx.post(
            envelope.address,
            content=body,
            timeout=self.timeout,
            follow_redirects=False,
            headers={
                "Content-Type": "application/json",
                "X-CMR-Vault-Signature": f"t={stamp},v1={signed}",
            },
        )
        response.raise_for_status()
