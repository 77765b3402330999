"""Preferences, pushes and their delivery, each decided by the policy engine.

A push is decided when it arrives (refused, queued, or deferred to a time) and decided again
from fresh facts when the delivery worker picks it up, so a revocation, an opt-out or a
newly reached cap between queueing and sending stops it. Every decision, delivery and failure
is written to the audit log with its rule ids and the policy version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.actions import PushAction
from cmr_vault.clock import Clock
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.consent.service import ConsentContext
from cmr_vault.crypto.blind_index import blind_index, subject_pseudonym
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.errors import NotFound, ValidationFailed
from cmr_vault.i18n import gettext as _
from cmr_vault.marketing.delivery import (
    DeliveryChannel,
    Envelope,
    UnsafeEndpoint,
    check_endpoint,
    failure_reason,
)
from cmr_vault.marketing.facts import attention_facts, clock_time, topics_field
from cmr_vault.marketing.models import (
    ALL,
    ChannelPreference,
    Message,
    MessageStatus,
    PushEndpoint,
)
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import CHANNELS, marketing_scope
from cmr_vault.policy.cases import decision_record
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    Action,
    Decision,
    DecisionRequest,
    Facts,
    Outcome,
    RuleHit,
)
from cmr_vault.policy.lifecycle import opt_in_scope
from cmr_vault.vault import service as vault_service

MAX_ATTEMPTS = 8
MAX_SUBJECT = 200
MAX_BODY = 20_000


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- preferences -------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceChange:
    """What the customer set for one company and channel (or for all: client_id '*')."""

    client_id: str
    channel: str
    opted_in: bool
    topics: list[str]
    cap_day: int | None
    cap_week: int | None
    cap_month: int | None
    quiet_start: str | None
    quiet_end: str | None
    paused_until: datetime | None


def check_preference(change: PreferenceChange) -> None:
    """Every value of a change within bounds, or every problem at once (nothing is saved)."""
    problems = {}
    if change.channel != ALL and change.channel not in CHANNELS:
        problems["channel"] = _("one of %(channels)s") % {"channels": ", ".join(CHANNELS)}
    for name in ("cap_day", "cap_week", "cap_month"):
        value = getattr(change, name)
        if value is not None and not 0 <= value <= 10_000:
            problems[name] = _("a whole number from 0 to 10000")
    for name in ("quiet_start", "quiet_end"):
        value = getattr(change, name)
        try:
            clock_time(value)
        except ValueError:
            problems[name] = _("a time like 22:00")
    if bool(change.quiet_start) != bool(change.quiet_end):
        problems["quiet_end"] = _("give both the start and the end of quiet hours")
    if len(change.topics) > 50 or any(len(t) > 40 for t in change.topics):
        problems["topics"] = _("up to 50 topics of up to 40 characters")
    if problems:
        raise ValidationFailed(_("Some preferences are not valid; nothing was saved."),
                               problems=problems)


def _topics_field(row: ChannelPreference) -> str:
    return topics_field(row.client_id, row.channel)


def seal_topics(cipher: FieldCipher, row: ChannelPreference, topics: list[str]) -> str:
    """Topics say what a person cares about: sealed like the profile's interests."""
    sealed = cipher.seal_fields(row.account_id, {_topics_field(row): json.dumps(topics)})
    return base64.b64encode(sealed[_topics_field(row)]).decode()


def open_topics(cipher: FieldCipher, row: ChannelPreference) -> list[str]:
    """The customer's topics for one preference row."""
    if not row.topics:
        return []
    opened = cipher.open_fields(row.account_id,
                                {_topics_field(row): base64.b64decode(row.topics)})
    return list(json.loads(opened[_topics_field(row)]))


def get_preference(session: Session, account_id: str, client_id: str, channel: str
                   ) -> ChannelPreference | None:
    """The stored preference row, if any."""
    return session.get(ChannelPreference, (account_id, client_id, channel))


def set_preference(
    session: Session, ctx: ConsentContext, *, cipher: FieldCipher, account_id: str,
    change: PreferenceChange,
) -> str | None:
    """Save one preference; returns a confirmation token when an e-mail opt-in needs one.

    Opting in to e-mail counts only after the customer follows the confirmation link (double
    opt-in); opting out takes effect at once and clears the confirmation. An opt-in lasts
    until the policy's reaffirmation date, if it sets one; giving or withdrawing one earns the
    customer a receipt.
    """
    check_preference(change)
    clock, pseudonym_key = ctx.clock, ctx.pseudonym_key
    now = clock.now()
    row = get_preference(session, account_id, change.client_id, change.channel) or \
        ChannelPreference(account_id=account_id, client_id=change.client_id,
                          channel=change.channel, updated_at=now)
    token = None
    newly_opted_in = change.opted_in and not row.opted_in
    if not change.opted_in:
        row.confirmed_at, row.confirmation_hash = None, None
    elif newly_opted_in and change.channel == "email":
        token = secrets.token_urlsafe(32)
        row.confirmed_at, row.confirmation_hash = None, _token_hash(token)
    elif newly_opted_in:
        row.confirmed_at = now
    withdrawn = row.opted_in and not change.opted_in
    if newly_opted_in:
        row.expires_at = ctx.lifecycle.bounded_expiry([opt_in_scope(change.channel)], None, now)
        row.reminded_at = None
    elif not change.opted_in:
        row.expires_at = None
    row.opted_in = change.opted_in
    row.topics = seal_topics(cipher, row, sorted(set(change.topics))) if change.topics else ""
    row.cap_day, row.cap_week, row.cap_month = change.cap_day, change.cap_week, change.cap_month
    row.quiet_start, row.quiet_end = change.quiet_start or None, change.quiet_end or None
    row.paused_until = change.paused_until
    row.updated_at = now
    session.add(row)
    session.flush()
    subject = subject_pseudonym(pseudonym_key, account_id)
    entry = audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"customer:{subject}", action="preferences.changed", subject=subject,
        resource=f"company:{change.client_id}", details={
            "company": change.client_id, "channel": change.channel,
            "opted_in": change.opted_in, "awaiting_confirmation": token is not None,
            "caps": [change.cap_day, change.cap_week, change.cap_month],
            "quiet_hours": [change.quiet_start, change.quiet_end],
            "paused_until": change.paused_until.isoformat() if change.paused_until else None,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        }))
    if change.client_id != ALL and (newly_opted_in or withdrawn):
        consent_service.opt_in_changed(
            session, ctx, account_id=account_id, client_id=change.client_id,
            channel=change.channel, change="given" if newly_opted_in else "withdrawn",
            expires_at=row.expires_at, audit_entry=entry)
    return token


def renew_opt_in(session: Session, ctx: ConsentContext, *, account_id: str, client_id: str,
                 channel: str) -> ChannelPreference:
    """One step: an opt-in that lapses (or just did) runs for another reaffirmation period."""
    row = get_preference(session, account_id, client_id, channel)
    days = ctx.lifecycle.reaffirm_days([opt_in_scope(channel)])
    if row is None or not row.opted_in or row.expires_at is None or days is None:
        raise ValidationFailed(_("This opt-in does not expire, so there is nothing to renew."),
                               problems={"channel": _("no expiring opt-in")})
    now = ctx.clock.now()
    row.expires_at, row.reminded_at, row.updated_at = now + timedelta(days=days), None, now
    session.add(row)
    subject = subject_pseudonym(ctx.pseudonym_key, account_id)
    entry = audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
        actor=f"customer:{subject}", action="preferences.renewed", subject=subject,
        resource=f"company:{client_id}", details={
            "company": client_id, "channel": channel, "expires_at": row.expires_at.isoformat()}))
    consent_service.opt_in_changed(session, ctx, account_id=account_id, client_id=client_id,
                                   channel=channel, change="renewed",
                                   expires_at=row.expires_at, audit_entry=entry)
    return row


def lapse_opt_ins(session: Session, ctx: ConsentContext) -> int:
    """Record every opt-in past its reaffirmation date as lapsed (pushes stopped at the date
    itself: the policy compares times); the customer opts in again to resume."""
    now = ctx.clock.now()
    due = session.exec(
        select(ChannelPreference).where(col(ChannelPreference.opted_in).is_(True))
        .where(col(ChannelPreference.expires_at).is_not(None))
        .where(col(ChannelPreference.expires_at) <= now).limit(500)
        .with_for_update(skip_locked=True)).all()
    for row in due:
        expired_at = row.expires_at
        row.opted_in, row.confirmed_at, row.updated_at = False, None, now
        session.add(row)
        subject = subject_pseudonym(ctx.pseudonym_key, row.account_id)
        entry = audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
            actor="system", action="preferences.expired", subject=subject,
            resource=f"company:{row.client_id}",
            details={"company": row.client_id, "channel": row.channel}))
        consent_service.opt_in_changed(
            session, ctx, account_id=row.account_id, client_id=row.client_id,
            channel=row.channel, change="expired", expires_at=expired_at, audit_entry=entry)
    return len(due)


def remind_opt_ins(session: Session, ctx: ConsentContext) -> int:
    """Remind customers of opt-ins that lapse within the policy's lead time."""
    now = ctx.clock.now()
    due = session.exec(
        select(ChannelPreference).where(col(ChannelPreference.opted_in).is_(True))
        .where(col(ChannelPreference.reminded_at).is_(None))
        .where(col(ChannelPreference.expires_at).is_not(None))
        .where(col(ChannelPreference.expires_at) > now)
        .where(col(ChannelPreference.expires_at) <= now + ctx.lifecycle.remind_before)
        .limit(500).with_for_update(skip_locked=True)).all()
    for row in due:
        assert row.expires_at is not None
        row.reminded_at = now
        session.add(row)
        consent_service.remind(session, ctx, account_id=row.account_id,
                               client_id=row.client_id, kind="opt-in",
                               target=row.channel, lapses_at=row.expires_at)
    return len(due)


def confirm_opt_in(session: Session, *, clock: Clock, pseudonym_key: bytes, token: str
                   ) -> ChannelPreference:
    """Follow a double opt-in link: the e-mail opt-in counts from now, with this time kept."""
    row = session.exec(select(ChannelPreference).where(
        ChannelPreference.confirmation_hash == _token_hash(token))).first()
    if row is None or not row.opted_in:
        raise NotFound("This confirmation link is not valid (any more).")
    row.confirmed_at, row.confirmation_hash = clock.now(), None
    session.add(row)
    subject = subject_pseudonym(pseudonym_key, row.account_id)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"customer:{subject}", action="preferences.confirmed", subject=subject,
        resource=f"company:{row.client_id}",
        details={"company": row.client_id, "channel": row.channel}))
    return row


# --- facts and decisions -------------------------------------------------------------------


def push_facts(session: Session, *, cipher: FieldCipher, grant: Grant | None,
               in_force: frozenset[str], account_id: str, client_id: str, channel: str,
               now: datetime) -> Facts:
    """Everything the policy engine needs to decide a push, read fresh (`marketing.facts`)."""
    return attention_facts(
        session, cipher=cipher, client_id=client_id, channel=channel, account_id=account_id,
        grant=consent_service.grant_facts(grant, scope=marketing_scope(channel),
                                          in_force=in_force, now=now), now=now)


@dataclass(frozen=True)
class PushRequest:
    """A company's message for one customer (named by its pairwise subject)."""

    subject: str
    channel: str
    topic: str
    purpose: str
    title: str
    body: str
    idempotency_key: str


def _validate_push(push: PushRequest, channels: Mapping[str, DeliveryChannel]) -> None:
    problems = {}
    if push.channel not in channels:
        problems["channel"] = f"this vault delivers on: {', '.join(sorted(channels))}"
    if not push.idempotency_key.strip() or len(push.idempotency_key) > 128:
        problems["idempotency_key"] = "1 to 128 characters, unique per message"
    if not push.title.strip() or len(push.title) > MAX_SUBJECT:
        problems["title"] = f"1 to {MAX_SUBJECT} characters"
    if not push.body.strip() or len(push.body) > MAX_BODY:
        problems["body"] = f"1 to {MAX_BODY} characters"
    if not push.purpose.strip() or len(push.purpose) > 200 or len(push.topic) > 64:
        problems["purpose"] = "a purpose of up to 200 characters; a topic of up to 64"
    if problems:
        raise ValidationFailed("The push is not valid.", problems=problems)


@dataclass(frozen=True)
class PushOutcome:
    """What happened to a push: the decision, and the queued message unless refused."""

    decision: Decision
    message: Message | None
    repeated: bool = False


def _decide(policy: PolicySet, client: OAuthClient, push: PushRequest | Message,
            facts: Facts, now: datetime) -> tuple[DecisionRequest, Decision]:
    request = DecisionRequest(company=client.client_id, subject="", action=Action.PUSH,
                              resource="message", purpose=push.purpose, time=now,
                              channel=push.channel, topic=push.topic)
    return request, policy.decide(request, facts)


def topic_alias(pseudonym_key: bytes) -> Callable[[str], str]:
    """How the audit log names a topic: a keyed hash, joinable by auditors, readable by none."""
    def alias(topic: str) -> str:
        return "topic:" + blind_index(pseudonym_key, "topic", topic)[:16]
    return alias


def _audit_push(session: Session, *, clock: Clock, pseudonym_key: bytes, action: PushAction,
                subject: str, client_id: str, push: PushRequest | Message,
                request: DecisionRequest, facts: Facts, decision: Decision,
                message_id: str | None, extra: dict[str, object] | None = None,
                outcome: str | None = None) -> None:
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"company:{client_id}", action=action, subject=subject,
        resource=f"message:{message_id}" if message_id else "message", purpose=push.purpose,
        outcome=outcome or str(decision.outcome),
        details={"company": client_id, "channel": push.channel,
                 "topic": topic_alias(pseudonym_key)(push.topic) if push.topic else "",
                 "rule_ids": decision.rule_ids, "reasons": decision.reasons,
                 "policy_version": decision.policy_version,
                 "decisions": {push.channel: {
                     **decision_record(request, facts, topic_alias(pseudonym_key)),
                     **decision.as_record()}},
                 **(extra or {})}))


def submit_push(
    session: Session, *, clock: Clock, policy: PolicySet, cipher: FieldCipher,
    pseudonym_key: bytes, grant: Grant, client: OAuthClient, in_force: frozenset[str],
    push: PushRequest, channels: Mapping[str, DeliveryChannel],
) -> PushOutcome:
    """Decide a push now: refuse it, queue it, or queue it deferred until the given time.

    A repeated idempotency key returns the first outcome unchanged, so a company retrying
    after a timeout never sends twice.
    """
    existing = session.exec(select(Message).where(
        Message.client_id == client.client_id,
        Message.idempotency_key == push.idempotency_key)).first()
    if existing is not None:
        decision = json.loads(existing.decision)
        return PushOutcome(_stored_decision(decision), existing, repeated=True)
    _validate_push(push, channels)
    now = clock.now()
    facts = push_facts(session, cipher=cipher, grant=grant, in_force=in_force,
                       account_id=grant.account_id, client_id=client.client_id,
                       channel=push.channel, now=now)
    request, decision = _decide(policy, client, push, facts, now)
    subject = subject_pseudonym(pseudonym_key, grant.account_id)
    message = None
    if decision.outcome is not Outcome.DENY:
        message_id = secrets.token_hex(16)
        sealed = cipher.seal_fields(grant.account_id, {
            f"message:{message_id}": json.dumps({"title": push.title, "body": push.body})})
        message = Message(
            id=message_id, client_id=client.client_id, account_id=grant.account_id,
            idempotency_key=push.idempotency_key, channel=push.channel, topic=push.topic,
            purpose=push.purpose,
            sealed_content=base64.b64encode(sealed[f"message:{message_id}"]).decode(),
            status=MessageStatus.DEFERRED if decision.outcome is Outcome.DEFER
            else MessageStatus.QUEUED,
            not_before=decision.defer_until or now, decision=json.dumps(decision.as_record()),
            unsubscribe_hash="", created_at=now)
        session.add(message)
        session.flush()
    _audit_push(session, clock=clock, pseudonym_key=pseudonym_key, action=PushAction.DECIDED,
                subject=subject,
                client_id=client.client_id, push=push, request=request, facts=facts,
                decision=decision, message_id=message.id if message else None)
    return PushOutcome(decision, message)


def check_push(
    session: Session, *, clock: Clock, policy: PolicySet, cipher: FieldCipher,
    pseudonym_key: bytes, grant: Grant, client: OAuthClient, in_force: frozenset[str],
    channel: str, topic: str, purpose: str,
) -> Decision:
    """The decision a push would get now, audited, without sending anything (consent check).

    The same facts and decision as `submit_push`, so a check never promises what a push would
    then be refused.
    """
    if channel not in CHANNELS:
        raise ValidationFailed("Unknown channel.", problems={"channel": ", ".join(CHANNELS)})
    now = clock.now()
    facts = push_facts(session, cipher=cipher, grant=grant, in_force=in_force,
                       account_id=grant.account_id, client_id=client.client_id,
                       channel=channel, now=now)
    request = DecisionRequest(company=client.client_id, subject="", action=Action.PUSH,
                              resource="message", purpose=purpose, time=now, channel=channel,
                              topic=topic)
    decision = policy.decide(request, facts)
    alias = topic_alias(pseudonym_key)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"company:{client.client_id}", action=PushAction.CHECKED,
        subject=subject_pseudonym(pseudonym_key, grant.account_id), resource="consent-check",
        purpose=purpose, outcome=str(decision.outcome),
        details={"company": client.client_id, "channel": channel,
                 "rule_ids": decision.rule_ids, "reasons": decision.reasons,
                 "policy_version": decision.policy_version,
                 "decisions": {channel: {**decision_record(request, facts, alias),
                                         **decision.as_record()}}}))
    return decision


def _stored_decision(record: dict[str, object]) -> Decision:
    until = record.get("defer_until")
    rules = tuple(RuleHit(rule, "", reason) for rule, reason in
                  zip(record["rule_ids"], record["reasons"], strict=True))  # type: ignore[call-overload]
    return Decision(Outcome(str(record["outcome"])),
                    datetime.fromisoformat(str(until)) if until else None, rules,
                    tuple(record.get("obligations", [])),  # type: ignore[arg-type]
                    str(record["policy_version"]))


# --- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    """What one pass of the delivery worker did."""

    delivered: int = 0
    deferred: int = 0
    stopped: int = 0
    retried: int = 0
    failed: int = 0


def _due(session: Session, now: datetime, limit: int) -> list[Message]:
    query = (select(Message)
             .where(col(Message.status).in_([MessageStatus.QUEUED, MessageStatus.DEFERRED]))
             .where(col(Message.not_before) <= now)
             .order_by(col(Message.not_before)).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        # Several workers on several hosts: each takes rows the others have not locked.
        query = query.with_for_update(skip_locked=True)
    return list(session.exec(query).all())


@dataclass(frozen=True)
class DeliveryContext:
    """Collaborators the delivery worker needs."""

    clock: Clock
    policy: PolicySet
    cipher: FieldCipher
    pseudonym_key: bytes
    channels: Mapping[str, DeliveryChannel]
    unsubscribe_base: str


def _grant_for(session: Session, message: Message) -> Grant | None:
    return session.exec(select(Grant).where(Grant.account_id == message.account_id,
                                            Grant.client_id == message.client_id)).first()


def deliver_one(session: Session, ctx: DeliveryContext, message: Message) -> str:
    """Decide again from fresh facts, then deliver, defer, stop or schedule a retry."""
    now = ctx.clock.now()
    client = session.get(OAuthClient, message.client_id)
    grant = _grant_for(session, message)
    in_force = frozenset(consent_service.scopes_of(grant)) if grant else frozenset()
    facts = push_facts(session, cipher=ctx.cipher, grant=grant, in_force=in_force,
                       account_id=message.account_id, client_id=message.client_id,
                       channel=message.channel, now=now)
    assert client is not None
    request, decision = _decide(ctx.policy, client, message, facts, now)
    subject = subject_pseudonym(ctx.pseudonym_key, message.account_id)
    audit = {"clock": ctx.clock, "pseudonym_key": ctx.pseudonym_key, "subject": subject,
             "client_id": message.client_id,
             "push": message, "request": request, "facts": facts, "decision": decision,
             "message_id": message.id}
    if decision.outcome is Outcome.DENY:
        message.status = MessageStatus.REFUSED
        session.add(message)
        _audit_push(session, action=PushAction.STOPPED, **audit)  # type: ignore[arg-type]
        return "stopped"
    if decision.outcome is Outcome.DEFER:
        message.status, message.not_before = MessageStatus.DEFERRED, decision.defer_until or now
        session.add(message)
        _audit_push(session, action=PushAction.DEFERRED, **audit)  # type: ignore[arg-type]
        return "deferred"
    token = secrets.token_urlsafe(24)
    try:
        ctx.channels[message.channel].deliver(_envelope(session, ctx, message, client, token))
    except Exception as exc:  # any transport failure: retry later, then give up
        message.attempts += 1
        message.last_error = failure_reason(exc)
        failed = message.attempts >= MAX_ATTEMPTS
        message.status = MessageStatus.FAILED if failed else MessageStatus.QUEUED
        message.not_before = now + timedelta(seconds=min(3600, 5 * 2 ** message.attempts))
        session.add(message)
        _audit_push(session, action=PushAction.FAILED if failed else PushAction.RETRY, **audit,  # type: ignore[arg-type]
                    outcome="failed", extra={"attempts": message.attempts,
                                             "error": type(exc).__name__})
        return "failed" if failed else "retried"
    message.status, message.delivered_at = MessageStatus.DELIVERED, now
    message.unsubscribe_hash = _token_hash(token)
    session.add(message)
    _audit_push(session, action=PushAction.DELIVERED, **audit,  # type: ignore[arg-type]
                extra={"obligations": list(decision.obligations)})
    return "delivered"


def _envelope(session: Session, ctx: DeliveryContext, message: Message, client: OAuthClient,
              token: str) -> Envelope:
    field = f"message:{message.id}"
    opened = ctx.cipher.open_fields(message.account_id,
                                    {field: base64.b64decode(message.sealed_content)})
    content = json.loads(opened[field])
    address, secret = "", ""
    if message.channel == "webhook":
        address, secret = open_endpoint(session, cipher=ctx.cipher,
                                        account_id=message.account_id)
    if message.channel == "email":
        address = vault_service.read_fields(session, cipher=ctx.cipher,
                                            account_id=message.account_id,
                                            names=["email"]).get("email", "")
        if not address:
            raise ValueError("the customer has no e-mail address in the vault")
    return Envelope(message_id=message.id, company_name=client.name, address=address,
                    subject=content["title"], body=content["body"],
                    unsubscribe_url=f"{ctx.unsubscribe_base}/unsubscribe/{token}",
                    signing_secret=secret)


def deliver_due(session: Session, ctx: DeliveryContext, *, limit: int = 100) -> DeliveryReport:
    """One pass of the worker: every due message, each decided again before it goes."""
    tally = {"delivered": 0, "deferred": 0, "stopped": 0, "retried": 0, "failed": 0}
    for message in _due(session, ctx.clock.now(), limit):
        tally[deliver_one(session, ctx, message)] += 1
    session.flush()
    return DeliveryReport(**tally)


def unsubscribe(session: Session, ctx: ConsentContext, *, token: str) -> OAuthClient:
    """One-click unsubscribe from a delivered message's link: that company, that channel."""
    message = session.exec(select(Message).where(
        Message.unsubscribe_hash == _token_hash(token))).first()
    if message is None:
        raise NotFound("This unsubscribe link is not valid.")
    row = get_preference(session, message.account_id, message.client_id, message.channel)
    withdrawn = row is not None and row.opted_in
    if row is not None and withdrawn:
        row.opted_in, row.confirmed_at, row.updated_at = False, None, ctx.clock.now()
        row.expires_at = None
        session.add(row)
    subject = subject_pseudonym(ctx.pseudonym_key, message.account_id)
    entry = audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
        actor=f"customer:{subject}", action="preferences.unsubscribed", subject=subject,
        resource=f"company:{message.client_id}",
        details={"company": message.client_id, "channel": message.channel}))
    if withdrawn:
        consent_service.opt_in_changed(
            session, ctx, account_id=message.account_id, client_id=message.client_id,
            channel=message.channel, change="withdrawn", expires_at=None, audit_entry=entry)
    client = session.get(OAuthClient, message.client_id)
    assert client is not None
    return client


def inbox(session: Session, *, cipher: FieldCipher, account_id: str, limit: int = 100
          ) -> list[tuple[Message, dict[str, str], str]]:
    """Delivered inbox messages, newest first: (message, content, company name)."""
    rows = session.exec(select(Message, OAuthClient.name)
                        .join(OAuthClient, col(OAuthClient.client_id) == Message.client_id)
                        .where(Message.account_id == account_id, Message.channel == "inbox",
                               Message.status == MessageStatus.DELIVERED)
                        .order_by(col(Message.delivered_at).desc()).limit(limit)).all()
    if not rows:
        return []
    sealed = {f"message:{m.id}": base64.b64decode(m.sealed_content) for m, _ in rows}
    opened = cipher.open_fields(account_id, sealed)
    return [(m, json.loads(opened[f"message:{m.id}"]), name) for m, name in rows]


def marketing_connections(session: Session, *, account_id: str, now: datetime
                          ) -> list[tuple[OAuthClient, list[str], dict[str, ChannelPreference]]]:
    """Companies the customer granted any marketing channel, with the stored preferences."""
    result = []
    for connection in consent_service.connections(session, account_id=account_id, now=now):
        channels = [s.target for s in connection.scopes if s.kind == "marketing"]
        if connection.state != "active" or not channels:
            continue
        rows = {ch: row for ch in channels
                if (row := get_preference(session, account_id, connection.company.client_id, ch))}
        result.append((connection.company, channels, rows))
    return result



def export_marketing(session: Session, *, cipher: FieldCipher, account_id: str
                     ) -> dict[str, Any]:
    """The customer's marketing preferences, their own app's address (push endpoint) and every
    message sent to them, for the export. The endpoint's signing key is left out: it is a
    credential shown once, and a copy in an export file would let anyone forge pushes."""
    endpoint = session.get(PushEndpoint, account_id)
    preferences = session.exec(select(ChannelPreference).where(
        ChannelPreference.account_id == account_id)).all()
    messages = session.exec(select(Message).where(Message.account_id == account_id)
                            .order_by(col(Message.created_at))).all()
    opened = cipher.open_fields(account_id, {f"message:{m.id}": base64.b64decode(
        m.sealed_content) for m in messages}) if messages else {}
    return {
        "preferences": [{
            "company": p.client_id, "channel": p.channel, "opted_in": p.opted_in,
            "confirmed_at": p.confirmed_at.isoformat() if p.confirmed_at else None,
            "topics": open_topics(cipher, p), "caps": [p.cap_day, p.cap_week, p.cap_month],
            "quiet_hours": [p.quiet_start, p.quiet_end],
            "paused_until": p.paused_until.isoformat() if p.paused_until else None,
            "expires_at": p.expires_at.isoformat() if p.expires_at else None,
        } for p in preferences],
        "push_endpoint": {
            "url": open_endpoint(session, cipher=cipher, account_id=account_id)[0],
            "updated_at": endpoint.updated_at.isoformat(),
        } if endpoint else None,
        "messages": [{
            "company": m.client_id, "channel": m.channel, "topic": m.topic,
            "purpose": m.purpose, "status": str(m.status), "created_at": m.created_at.isoformat(),
            "delivered_at": m.delivered_at.isoformat() if m.delivered_at else None,
            **json.loads(opened[f"message:{m.id}"]),
        } for m in messages],
    }


def set_endpoint(session: Session, *, clock: Clock, cipher: FieldCipher, pseudonym_key: bytes,
                 account_id: str, url: str, allow_loopback: bool) -> str:
    """Register (or replace) the customer's webhook endpoint; returns the new signing key,
    shown to the customer once so their app can verify every push."""
    try:
        check_endpoint(url, allow_loopback=allow_loopback)
    except UnsafeEndpoint as exc:
        raise ValidationFailed("That address cannot receive pushes.",
                               problems={"webhook_url": str(exc)}) from exc
    secret = secrets.token_urlsafe(32)
    sealed = cipher.seal_fields(account_id, {"push-endpoint:url": url,
                                             "push-endpoint:secret": secret})
    row = session.get(PushEndpoint, account_id) or PushEndpoint(
        account_id=account_id, sealed_url="", sealed_secret="", updated_at=clock.now())
    row.sealed_url = base64.b64encode(sealed["push-endpoint:url"]).decode()
    row.sealed_secret = base64.b64encode(sealed["push-endpoint:secret"]).decode()
    row.updated_at = clock.now()
    session.add(row)
    subject = subject_pseudonym(pseudonym_key, account_id)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"customer:{subject}", action="push-endpoint.changed", subject=subject,
        resource="push-endpoint"))
    return secret


def open_endpoint(session: Session, *, cipher: FieldCipher, account_id: str
                  ) -> tuple[str, str]:
    """(url, signing key) of the customer's webhook endpoint; raises when there is none."""
    row = session.get(PushEndpoint, account_id)
    if row is None:
        raise ValueError("the customer has no push endpoint")
    opened = cipher.open_fields(account_id, {
        "push-endpoint:url": base64.b64decode(row.sealed_url),
        "push-endpoint:secret": base64.b64decode(row.sealed_secret)})
    return opened["push-endpoint:url"], opened["push-endpoint:secret"]


def has_endpoint(session: Session, account_id: str) -> bool:
    """Whether pushes to the customer's app have somewhere to go."""
    return session.get(PushEndpoint, account_id) is not None


def endpoint_url(session: Session, *, cipher: FieldCipher, account_id: str) -> str:
    """The customer's webhook address, or "" when none is registered."""
    if not has_endpoint(session, account_id):
        return ""
    return open_endpoint(session, cipher=cipher, account_id=account_id)[0]


def topics_sent(session: Session, *, account_id: str, client_id: str, limit: int = 20
                ) -> list[str]:
    """The topics a company has written to the customer about, for the preference center's
    choices: people pick from what a company actually sends rather than guess its words."""
    rows = session.exec(
        select(Message.topic).where(Message.account_id == account_id,
                                    Message.client_id == client_id, Message.topic != "")
        .distinct().limit(limit)).all()
    return sorted(rows)
