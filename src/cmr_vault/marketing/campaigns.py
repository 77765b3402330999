"""Campaigns: one message for up to a million subjects, each decided on its own.

Facts are read in bulk (one query per kind per chunk of subjects), and only what a decision can
need is opened: sealed topics only where a customer set some, the time zone only where quiet
hours are set. A dry run decides every subject and changes nothing; a real run is stored and
worked off in the background in chunks, each subject through the same push path as a single
push (so idempotency, sealing, auditing and the decision at delivery all apply).
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, tuple_
from sqlmodel import Session, col, select

from cmr_vault.clock import Clock
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.errors import NotFound, ValidationFailed
from cmr_vault.marketing import service as marketing_service
from cmr_vault.marketing.models import ALL, Campaign, CampaignTarget, ChannelPreference, Message
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import CHANNELS
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    Counters,
    Decision,
    DecisionRequest,
    Facts,
)
from cmr_vault.vault import service as vault_service

MAX_SUBJECTS = 1_000_000
CHUNK = 900  # stays under SQLite's bound-parameter limit


@dataclass(frozen=True)
class CampaignRequest:
    """What a company wants to send, to whom."""

    subjects: Sequence[str]
    channel: str
    topic: str
    purpose: str
    title: str
    body: str


def validate(request: CampaignRequest) -> None:
    """Refuse a malformed campaign before anything is decided."""
    problems = {}
    if not 1 <= len(request.subjects) <= MAX_SUBJECTS:
        problems["subjects"] = f"1 to {MAX_SUBJECTS:,} pairwise subjects"
    if request.channel not in CHANNELS:
        problems["channel"] = ", ".join(CHANNELS)
    if not request.purpose.strip() or not request.title.strip() or not request.body.strip():
        problems["content"] = "purpose, title and body are required"
    if problems:
        raise ValidationFailed("The campaign is not valid.", problems=problems)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


@dataclass
class _Loaded:
    grants: dict[str, Grant] = field(default_factory=dict)
    preferences: dict[tuple[str, str], ChannelPreference] = field(default_factory=dict)
    delivered: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)


def _load(session: Session, *, client_id: str, channel: str, subjects: Sequence[str],
          now: datetime) -> _Loaded:
    loaded = _Loaded()
    for grant in session.exec(select(Grant).where(
            Grant.client_id == client_id, col(Grant.pairwise_subject).in_(subjects))).all():
        loaded.grants[grant.pairwise_subject] = grant
    accounts = [g.account_id for g in loaded.grants.values()]
    if not accounts:
        return loaded
    for row in session.exec(select(ChannelPreference).where(
            col(ChannelPreference.account_id).in_(accounts),
            tuple_(ChannelPreference.client_id, ChannelPreference.channel).in_(
                [(client_id, channel), (ALL, ALL)]))).all():
        loaded.preferences[(row.account_id, row.client_id)] = row
    month = now - timedelta(days=30)
    for account_id, sender, at in session.exec(
            select(Message.account_id, Message.client_id, Message.delivered_at).where(
                col(Message.account_id).in_(accounts), col(Message.delivered_at) >= month)
    ).all():
        loaded.delivered.setdefault(account_id, []).append((sender, at))
    return loaded


def _counters(sent: list[tuple[str, datetime]], client_id: str, now: datetime) -> Counters:
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    mine = [at for sender, at in sent if sender == client_id]
    return Counters(company_day=sum(at >= day for at in mine),
                    company_week=sum(at >= week for at in mine), company_month=len(mine),
                    all_day=sum(at >= day for _, at in sent),
                    all_week=sum(at >= week for _, at in sent), all_month=len(sent))


def _needs_zone(*prefs: ChannelPreferences) -> bool:
    return any(p.quiet_start is not None for p in prefs)


def decide_many(
    session: Session, *, cipher: FieldCipher, policy: PolicySet, client: OAuthClient,
    request: CampaignRequest, subjects: Sequence[str], now: datetime,
) -> list[tuple[str, Grant | None, Decision]]:
    """(subject, grant, decision) for each subject, facts read in bulk."""
    loaded = _load(session, client_id=client.client_id, channel=request.channel,
                   subjects=subjects, now=now)
    base = DecisionRequest(company=client.client_id, subject="", action=Action.PUSH,
                           resource="message", purpose=request.purpose, time=now,
                           channel=request.channel, topic=request.topic)
    results = []
    for subject in subjects:
        grant = loaded.grants.get(subject)
        if grant is None:
            results.append((subject, None, policy.decide(base, Facts())))
            continue
        prefs = marketing_service.channel_preferences(
            cipher, loaded.preferences.get((grant.account_id, client.client_id)))
        overall = marketing_service.channel_preferences(
            cipher, loaded.preferences.get((grant.account_id, ALL)))
        zone = "UTC"
        if _needs_zone(prefs, overall):
            zone = vault_service.read_fields(session, cipher=cipher, account_id=grant.account_id,
                                             names=["time_zone"]).get("time_zone") or "UTC"
        facts = Facts(
            grant=consent_service.grant_facts(
                grant, scope=f"marketing.{request.channel}",
                in_force=frozenset(consent_service.scopes_of(grant)), now=now),
            preferences=prefs, global_preferences=overall,
            counters=_counters(loaded.delivered.get(grant.account_id, []), client.client_id,
                               now),
            time_zone=zone)
        results.append((subject, grant, policy.decide(base, facts)))
    return results


@dataclass
class Tally:
    """How many would be (or were) sent, deferred and refused, and why."""

    sent: int = 0
    deferred: int = 0
    refused: int = 0
    refused_by_rule: Counter[str] = field(default_factory=Counter)

    def add(self, decision: Decision) -> None:
        """Count one decision."""
        outcome = str(decision.outcome)
        if outcome == "allow":
            self.sent += 1
        elif outcome == "defer":
            self.deferred += 1
        else:
            self.refused += 1
            self.refused_by_rule.update(decision.rule_ids)

    def document(self) -> dict[str, object]:
        """JSON-ready counts."""
        return {"send": self.sent, "defer": self.deferred, "refuse": self.refused,
                "refused_by_rule": dict(self.refused_by_rule.most_common())}


def dry_run(session: Session, *, cipher: FieldCipher, policy: PolicySet, client: OAuthClient,
            request: CampaignRequest, now: datetime) -> tuple[Tally, list[dict[str, object]]]:
    """Decide every subject and change nothing: counts by outcome and rule, and per subject."""
    validate(request)
    tally, per_subject = Tally(), []
    for chunk in _chunks(request.subjects):
        for subject, _, decision in decide_many(session, cipher=cipher, policy=policy,
                                                client=client, request=request,
                                                subjects=chunk, now=now):
            tally.add(decision)
            per_subject.append({
                "subject": subject, "outcome": str(decision.outcome),
                "rule_ids": decision.rule_ids,
                "not_before": decision.defer_until.isoformat() if decision.defer_until
                else None})
    return tally, per_subject


def start(session: Session, *, clock: Clock, client: OAuthClient, request: CampaignRequest
          ) -> Campaign:
    """Store a real run; the background worker works it off in chunks."""
    validate(request)
    campaign = Campaign(
        id=secrets.token_hex(16), client_id=client.client_id, channel=request.channel,
        topic=request.topic, purpose=request.purpose, title=request.title, body=request.body,
        status="queued", total=len(request.subjects), created_at=clock.now())
    session.add(campaign)
    session.flush()
    for offset in range(0, len(request.subjects), 5000):
        session.execute(insert(CampaignTarget.__table__), [  # type: ignore[attr-defined]
            {"campaign_id": campaign.id, "position": offset + i, "subject": subject,
             "outcome": "", "rule_ids": ""}
            for i, subject in enumerate(request.subjects[offset:offset + 5000])])
    return campaign


def get(session: Session, *, client_id: str, campaign_id: str) -> Campaign:
    """One of the company's campaigns."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.client_id != client_id:
        raise NotFound("No such campaign for this company.")
    return campaign


def results(session: Session, campaign: Campaign, *, after: int, limit: int
            ) -> list[CampaignTarget]:
    """Per-subject results in order, `limit` at a time from position `after`."""
    return list(session.exec(select(CampaignTarget).where(
        CampaignTarget.campaign_id == campaign.id, col(CampaignTarget.position) >= after)
        .order_by(col(CampaignTarget.position)).limit(limit)).all())


def work(session: Session, ctx: marketing_service.DeliveryContext, *, chunk: int = CHUNK
         ) -> int:
    """Process the next chunk of the oldest unfinished campaign; returns subjects done."""
    campaign = session.exec(select(Campaign).where(
        col(Campaign.status).in_(["queued", "running"]))
        .order_by(col(Campaign.created_at)).limit(1)).first()
    if campaign is None:
        return 0
    client = session.get(OAuthClient, campaign.client_id)
    assert client is not None
    targets = results(session, campaign, after=campaign.processed, limit=chunk)
    request = CampaignRequest([t.subject for t in targets], campaign.channel, campaign.topic,
                              campaign.purpose, campaign.title, campaign.body)
    counts = Counter(json.loads(campaign.counts))
    for target in targets:
        grant = session.exec(select(Grant).where(
            Grant.client_id == client.client_id,
            Grant.pairwise_subject == target.subject)).first()
        outcome = _push_one(session, ctx, client, campaign, request, target, grant)
        counts[str(outcome.decision.outcome)] += 1
        target.outcome = str(outcome.decision.outcome)
        target.rule_ids = ",".join(outcome.decision.rule_ids)
        target.not_before = outcome.message.not_before if outcome.message else None
        target.message_id = outcome.message.id if outcome.message else None
        session.add(target)
    campaign.processed += len(targets)
    campaign.counts = json.dumps(dict(counts))
    campaign.status = "done" if campaign.processed >= campaign.total else "running"
    if campaign.status == "done":
        campaign.finished_at = ctx.clock.now()
    session.add(campaign)
    session.flush()
    return len(targets)


def _push_one(session: Session, ctx: marketing_service.DeliveryContext, client: OAuthClient,
              campaign: Campaign, request: CampaignRequest, target: CampaignTarget,
              grant: Grant | None) -> marketing_service.PushOutcome:
    if grant is None:
        base = DecisionRequest(company=client.client_id, subject="", action=Action.PUSH,
                               resource="message", purpose=request.purpose,
                               time=ctx.clock.now(), channel=request.channel,
                               topic=request.topic)
        return marketing_service.PushOutcome(ctx.policy.decide(base, Facts()), None)
    return marketing_service.submit_push(
        session, clock=ctx.clock, policy=ctx.policy, cipher=ctx.cipher,
        pseudonym_key=ctx.pseudonym_key, grant=grant, client=client,
        in_force=frozenset(consent_service.scopes_of(grant)), channels=ctx.channels,
        push=marketing_service.PushRequest(
            subject=target.subject, channel=request.channel, topic=request.topic,
            purpose=request.purpose, title=request.title, body=request.body,
            idempotency_key=f"campaign:{campaign.id}:{target.position}"))
