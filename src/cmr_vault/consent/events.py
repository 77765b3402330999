"""Company events: every consent change that affects a company, delivered until acknowledged.

A change writes its event in the same transaction (the outbox), so an event exists exactly when
the change committed. Delivery POSTs it to the company's webhook, signed per the Standard
Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC>`),
retrying on the scheme's schedule until the receiver answers 2xx. Delivery is not the end:
the company must acknowledge each event through the API, which proves it followed the change;
the acknowledgement is audited and the auditor sees what is still unacknowledged.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, col, select
from standardwebhooks import Webhook

from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.consent.models import CompanyEvent, CompanyWebhook
from cmr_vault.consent.schemas import EventDocument
from cmr_vault.crypto.data_keys import DataKeyMissingError, DataKeyStore
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.errors import Forbidden, NotFound
from cmr_vault.marketing.delivery import UnsafeEndpoint, check_endpoint

# Standard Webhooks' suggested schedule: after each failure, wait this long before the next try.
RETRY_AFTER = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
               timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
               timedelta(hours=10))
TYPES = frozenset({
    "grant.given", "grant.renewed", "grant.narrowed", "grant.widened", "grant.revoked",
    "grant.relinquished", "grant.compromised", "grant.expired", "customer.erased",
    "marketing.withdrawn", "marketing.expired",
})
_SECRET_FIELD = "webhook-secret"  # noqa: S105 (the name of a sealed field, not a secret)


def _owner(client_id: str) -> str:
    return f"company:{client_id}"


def emit(session: Session, *, clock: Clock, client_id: str, type: str,
         data: dict[str, Any]) -> CompanyEvent:
    """Queue one event for a company, in the caller's transaction."""
    if type not in TYPES:
        raise ValueError(f"unknown company event type {type!r}")
    now = clock.now()
    event = CompanyEvent(
        id=f"msg_{secrets.token_hex(16)}", client_id=client_id, type=type,
        payload=json.dumps({"type": type, "timestamp": now.isoformat(), "data": data},
                           sort_keys=True, separators=(",", ":")),
        created_at=now, next_attempt_at=now,
    )
    session.add(event)
    return event


# --- the company's webhook -------------------------------------------------------------------


def register_webhook(session: Session, *, clock: Clock, cipher: FieldCipher,
                     data_keys: DataKeyStore, client_id: str, url: str,
                     allow_loopback: bool) -> str:
    """Set (or replace) where the company's events go; returns the new secret, shown once."""
    try:
        check_endpoint(url, allow_loopback=allow_loopback)
    except UnsafeEndpoint as exc:  # well-formed, but an address the vault will not call
        raise Forbidden(f"The webhook URL cannot be used: {exc}.",
                        problems={"url": str(exc)}) from exc
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    owner = _owner(client_id)
    try:
        sealed = cipher.seal_fields(owner, {_SECRET_FIELD: secret})
    except DataKeyMissingError:
        data_keys.create(owner)
        sealed = cipher.seal_fields(owner, {_SECRET_FIELD: secret})
    row = session.get(CompanyWebhook, client_id) or CompanyWebhook(
        client_id=client_id, url=url, sealed_secret="", updated_at=clock.now())
    row.url, row.updated_at = url, clock.now()
    row.sealed_secret = base64.b64encode(sealed[_SECRET_FIELD]).decode()
    session.add(row)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"company:{client_id}", action="webhook.registered",
        resource=f"company:{client_id}", details={"company": client_id}))
    return secret


def webhook_of(session: Session, client_id: str) -> CompanyWebhook | None:
    """The company's webhook, if it registered one."""
    return session.get(CompanyWebhook, client_id)


def remove_webhook(session: Session, *, clock: Clock, client_id: str) -> None:
    """Stop pushing events; they stay available to pull and to acknowledge."""
    row = session.get(CompanyWebhook, client_id)
    if row is None:
        raise NotFound("No webhook is registered.")
    session.delete(row)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"company:{client_id}", action="webhook.removed",
        resource=f"company:{client_id}", details={"company": client_id}))


def _secret(cipher: FieldCipher, row: CompanyWebhook) -> str:
    opened = cipher.open_fields(_owner(row.client_id),
                                {_SECRET_FIELD: base64.b64decode(row.sealed_secret)})
    return opened[_SECRET_FIELD]


# --- delivery --------------------------------------------------------------------------------


Post = Callable[[str, bytes, dict[str, str]], int]


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST without following redirects; the status code is the receiver's answer."""
    return httpx.post(url, content=body, headers=headers, timeout=5.0,
                      follow_redirects=False).status_code


@dataclass(frozen=True)
class EventDelivery:
    """What one delivery pass did."""

    delivered: int = 0
    failed: int = 0


def signed_headers(secret: str, event_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    signature = Webhook(secret).sign(event_id, at, body.decode())
    return {"content-type": "application/json", "webhook-id": event_id,
            "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def deliver_due(session: Session, *, clock: Clock, cipher: FieldCipher, allow_loopback: bool,
                post: Post = http_post, limit: int = 100) -> EventDelivery:
    """Try every due event of every company with a webhook, oldest first."""
    now = clock.now()
    rows = session.exec(
        select(CompanyEvent, CompanyWebhook)
        .join(CompanyWebhook, col(CompanyWebhook.client_id) == col(CompanyEvent.client_id))
        .where(col(CompanyEvent.delivered_at).is_(None))
        .where(col(CompanyEvent.next_attempt_at).is_not(None))
        .where(col(CompanyEvent.next_attempt_at) <= now)
        .order_by(col(CompanyEvent.seq)).limit(limit)
        .with_for_update(skip_locked=True, of=CompanyEvent)
    ).all()
    delivered = failed = 0
    secrets_by_company: dict[str, str] = {}
    for event, webhook in rows:
        if webhook.client_id not in secrets_by_company:
            secrets_by_company[webhook.client_id] = _secret(cipher, webhook)
        ok, error = _attempt(event, webhook, secrets_by_company[webhook.client_id], now,
                             allow_loopback, post)
        _settle(event, ok, error, now)
        session.add(event)
        delivered, failed = delivered + ok, failed + (not ok)
    return EventDelivery(delivered, failed)


def _attempt(event: CompanyEvent, webhook: CompanyWebhook, secret: str, now: datetime,
             allow_loopback: bool, post: Post) -> tuple[bool, str]:
    body = event.payload.encode()
    try:
        check_endpoint(webhook.url, allow_loopback=allow_loopback)
        status = post(webhook.url, body, signed_headers(secret, event.id, now, body))
    except (UnsafeEndpoint, httpx.HTTPError, OSError) as exc:
        return False, f"{type(exc).__name__}: {exc}"[:500]
    return 200 <= status < 300, "" if 200 <= status < 300 else f"HTTP {status}"


def _settle(event: CompanyEvent, ok: bool, error: str, now: datetime) -> None:
    event.attempts += 1
    if ok:
        event.delivered_at, event.next_attempt_at, event.last_error = now, None, ""
        return
    event.last_error = error
    wait = RETRY_AFTER[event.attempts - 1] if event.attempts <= len(RETRY_AFTER) else None
    event.next_attempt_at = now + wait if wait is not None else None


# --- the company's side: pull and acknowledge ------------------------------------------------


def events_for(session: Session, *, client_id: str, unacknowledged: bool,
               limit: int = 100) -> list[CompanyEvent]:
    """The company's events, oldest first (only those not yet acknowledged, if asked)."""
    query = select(CompanyEvent).where(CompanyEvent.client_id == client_id)
    if unacknowledged:
        query = query.where(col(CompanyEvent.acknowledged_at).is_(None))
    return list(session.exec(query.order_by(col(CompanyEvent.seq)).limit(limit)).all())


def acknowledge(session: Session, *, clock: Clock, client_id: str,
                event_id: str) -> CompanyEvent:
    """The company says it has followed the change; the first acknowledgement counts."""
    event = session.exec(select(CompanyEvent).where(CompanyEvent.id == event_id)).first()
    if event is None or event.client_id != client_id:
        raise NotFound("No such event for this company.")
    if event.acknowledged_at is None:
        event.acknowledged_at = clock.now()
        session.add(event)
        payload = json.loads(event.payload)
        audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
            actor=f"company:{client_id}", action="event.acknowledged",
            resource=f"event:{event.id}",
            details={"company": client_id, "type": event.type,
                     "grant": payload["data"].get("grant_id")}))
    return event


def document(event: CompanyEvent) -> EventDocument:
    """An event as the company's API shows it: the signed payload plus its delivery state."""
    payload = json.loads(event.payload)
    return {
        "id": event.id, "type": payload["type"], "timestamp": payload["timestamp"],
        "data": payload["data"],
        "attempts": event.attempts,
        "delivered_at": event.delivered_at.isoformat() if event.delivered_at else None,
        "acknowledged_at": event.acknowledged_at.isoformat() if event.acknowledged_at else None,
        "last_error": event.last_error or None,
    }


@dataclass(frozen=True)
class Unacknowledged:
    """One company's backlog of changes it has not confirmed following."""

    client_id: str
    count: int
    oldest: datetime

    def age(self, now: datetime) -> timedelta:
        """How long the oldest unacknowledged change has waited."""
        return now - self.oldest


def unacknowledged_by_company(session: Session) -> list[Unacknowledged]:
    """Per company: how many changes are unacknowledged and since when (oldest first)."""
    rows = session.exec(
        select(CompanyEvent.client_id, func.count(), func.min(CompanyEvent.created_at))
        .where(col(CompanyEvent.acknowledged_at).is_(None))
        .group_by(CompanyEvent.client_id)
        .order_by(func.min(CompanyEvent.created_at))
    ).all()
    return [Unacknowledged(client_id, count, oldest) for client_id, count, oldest in rows]
