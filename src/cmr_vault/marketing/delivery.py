"""Delivery channels: where an allowed message goes. The company never sees the address.

Each channel implements `deliver(envelope)`; raising means "try again later". The in-vault inbox
needs no transport (a delivered inbox message is simply shown on the customer's Inbox page);
e-mail goes out over SMTP with RFC 8058 one-click unsubscribe headers.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol


@dataclass(frozen=True)
class Envelope:
    """One message ready to go: content, the customer's address, the unsubscribe link."""

    message_id: str
    company_name: str
    address: str
    subject: str
    body: str
    unsubscribe_url: str


class DeliveryChannel(Protocol):
    """A way to reach the customer."""

    def deliver(self, envelope: Envelope) -> None:
        """Hand the message over; raise to have it retried with back-off."""


class InboxChannel:
    """The customer's inbox in the vault: storing the message as delivered is the delivery."""

    def deliver(self, envelope: Envelope) -> None:
        """Nothing to send: the Inbox page shows delivered inbox messages."""


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
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            smtp.send_message(mail)
