"""Campaigns: one message for up to a million subjects, each decided on its own.

Facts are read in bulk (one query per kind per chunk of subjects), and only what a decision can
need is opened: sealed topics only where a customer set some, the time zone only where quiet
hours are set. A dry run decides every subject and changes nothing; a real run is stored and
worked off in the background in chunks, each subject through the same push path as a single
push (so idempotency, sealing, auditing and the decision at delivery all apply).
"""

from __future__ import annotations

import json
import math
import secrets
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, insert, tuple_
from sqlmodel import Session, col, select

from cmr_vault.clock import Clock
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.errors import NotFound, TooManyRequests, ValidationFailed
from cmr_vault.marketing import service as marketing_service
from cmr_vault.marketing.models import ALL, Campaign, CampaignTarget, ChannelPreference, Message
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import CHANNELS
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    Decision,
    DecisionRequest,
    Facts,
    GrantFacts,
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


@dataclass(frozen=True)
class _GrantRow:
    account_id: str
    status: str
    expires_at: datetime | None
    scopes: str
    purposes: str


@dataclass
class _Loaded:
    grants: dict[str, _GrantRow] = field(default_factory=dict)
    preferences: dict[tuple[str, str], ChannelPreference] = field(default_factory=dict)
    delivered: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)


def _load(session: Session, *, client_id: str, channel: str, subjects: Sequence[str] | None,
          now: datetime) -> _Loaded:
    """Grants, preferences and recent deliveries for `subjects`, or for every customer of
    the company when `subjects` is None (one pass each, for large campaigns)."""
    # Core rows, not ORM objects: at a million subjects the ORM's bookkeeping is the cost.
    loaded = _Loaded()
    grants = select(Grant.pairwise_subject, Grant.account_id, Grant.status, Grant.expires_at,
                    Grant.scopes, Grant.purposes).where(Grant.client_id == client_id)
    if subjects is not None:
        grants = grants.where(col(Grant.pairwise_subject).in_(subjects))
    for subject, *values in session.execute(grants):
        loaded.grants[subject] = _GrantRow(*values)
    if not loaded.grants:
        return loaded
    accounts = select(Grant.account_id).where(Grant.client_id == client_id)
    if subjects is not None:
        accounts = accounts.where(col(Grant.pairwise_subject).in_(subjects))
    preferences = select(ChannelPreference).where(
        col(ChannelPreference.account_id).in_(accounts.scalar_subquery()),
        tuple_(ChannelPreference.client_id, ChannelPreference.channel).in_(
            [(client_id, channel), (ALL, ALL)]))
    for row in session.exec(preferences).all():
        loaded.preferences[(row.account_id, row.client_id)] = row
    month = now - timedelta(days=30)
    for account_id, sender, at in session.execute(
            select(Message.account_id, Message.client_id, Message.delivered_at).where(
                col(Message.account_id).in_(accounts.scalar_subquery()),
                col(Message.delivered_at) >= month)):
        loaded.delivered.setdefault(account_id, []).append((sender, at))
    return loaded


NO_PREFERENCES = ChannelPreferences()
NO_GRANT = Facts()


def _needs_zone(*prefs: ChannelPreferences) -> bool:
    return any(p.quiet_start is not None for p in prefs)


class _FactCache:
    """Grants and preferences repeat across a campaign's subjects: parse each shape once,
    and decide each distinct set of facts once (a decision is a pure function of them)."""

    def __init__(self, cipher: FieldCipher, policy: PolicySet) -> None:
        self.cipher = cipher
        self.policy = policy
        self.grants: dict[tuple[object, ...], GrantFacts] = {}
        self.shared_preferences: dict[tuple[object, ...], ChannelPreferences] = {}
        self.decisions: dict[tuple[object, ...], Decision] = {}
        self.keep: list[Facts] = []

    def grant(self, row: _GrantRow, scope: str, now: datetime) -> GrantFacts:
        expired = row.expires_at is not None and row.expires_at <= now
        key = (row.status, expired, row.expires_at, row.scopes, row.purposes, scope)
        found = self.grants.get(key)
        if found is None:
            status = "expired" if row.status == "active" and expired else row.status
            scopes = frozenset(json.loads(row.scopes))
            found = GrantFacts(True, status, row.expires_at, scopes,
                               frozenset(json.loads(row.purposes).get(scope, [])))
            self.grants[key] = found
        return found

    def preferences(self, row: ChannelPreference | None) -> ChannelPreferences:
        if row is None:
            return NO_PREFERENCES
        if row.topics:  # sealed per customer: nothing to share
            return marketing_service.channel_preferences(self.cipher, row)
        key = (row.opted_in, row.confirmed_at, row.cap_day, row.cap_week, row.cap_month,
               row.quiet_start, row.quiet_end, row.paused_until, row.expires_at)
        found = self.shared_preferences.get(key)
        if found is None:
            found = self.shared_preferences[key] = marketing_service.channel_preferences(
                self.cipher, row)
        return found

    def decide(self, request: DecisionRequest, facts: Facts) -> Decision:
        # Shared parts are the same objects, so their identities make a cheap, exact key.
        key = (id(facts.grant), id(facts.preferences), id(facts.global_preferences),
               facts.counters, facts.time_zone)
        found = self.decisions.get(key)
        if found is None:
            found = self.decisions[key] = self.policy.decide(request, facts)
            self.keep.append(facts)  # keeps the ids in the key from being reused
        return found


def decide_many(
    session: Session, *, cache: _FactCache, client: OAuthClient, request: CampaignRequest,
    subjects: Sequence[str], now: datetime, loaded: _Loaded | None = None,
) -> list[tuple[str, Decision]]:
    """(subject, decision) for each subject, facts read in bulk (or taken from `loaded`)."""
    if loaded is None:
        loaded = _load(session, client_id=client.client_id, channel=request.channel,
                       subjects=subjects, now=now)
    base = DecisionRequest(company=client.client_id, subject="", action=Action.PUSH,
                           resource="message", purpose=request.purpose, time=now,
                           channel=request.channel, topic=request.topic)
    scope = f"marketing.{request.channel}"
    results = []
    for subject in subjects:
        grant = loaded.grants.get(subject)
        if grant is None:
            results.append((subject, cache.decide(base, NO_GRANT)))
            continue
        prefs = cache.preferences(loaded.preferences.get((grant.account_id, client.client_id)))
        overall = cache.preferences(loaded.preferences.get((grant.account_id, ALL)))
        zone = "UTC"
        if _needs_zone(prefs, overall):
            zone = vault_service.read_fields(session, cipher=cache.cipher,
                                             account_id=grant.account_id,
                                             names=["time_zone"]).get("time_zone") or "UTC"
        sent = loaded.delivered.get(grant.account_id, [])
        facts = Facts(grant=cache.grant(grant, scope, now), preferences=prefs,
                      global_preferences=overall,
                      counters=marketing_service.count_sent(sent, client.client_id, now),
                      time_zone=zone)
        results.append((subject, cache.decide(base, facts)))
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
        outcome = decision.outcome
        if outcome == "allow":
            self.sent += 1
        elif outcome == "defer":
            self.deferred += 1
        else:
            self.refused += 1
            self.refused_by_rule.update(hit.rule_id for hit in decision.rules)

    def document(self) -> dict[str, object]:
        """JSON-ready counts."""
        return {"send": self.sent, "defer": self.deferred, "refuse": self.refused,
                "refused_by_rule": dict(self.refused_by_rule.most_common())}


class _Summaries:
    """Each distinct decision summarised once for the per-subject results."""

    def __init__(self) -> None:
        self._done: dict[int, dict[str, object]] = {}

    def of(self, decision: Decision) -> dict[str, object]:
        found = self._done.get(id(decision))
        if found is None:
            found = self._done[id(decision)] = {
                "outcome": str(decision.outcome), "rule_ids": decision.rule_ids,
                "not_before": decision.defer_until.isoformat() if decision.defer_until
                else None}
        return found


def dry_run(session: Session, *, cipher: FieldCipher, policy: PolicySet, client: OAuthClient,
            request: CampaignRequest, now: datetime) -> tuple[Tally, list[dict[str, object]]]:
    """Decide every subject and change nothing: counts by outcome and rule, and per subject."""
    validate(request)
    tally, per_subject, summaries = Tally(), [], _Summaries()
    cache = _FactCache(cipher, policy)
    # Past a few chunks, one pass over all of the company's customers beats many IN lists.
    everyone = (_load(session, client_id=client.client_id, channel=request.channel,
                      subjects=None, now=now) if len(request.subjects) > 20 * CHUNK else None)
    for chunk in _chunks(request.subjects):
        for subject, decision in decide_many(session, cache=cache, client=client,
                                             request=request, subjects=chunk, now=now,
                                             loaded=everyone):
            tally.add(decision)
            per_subject.append({"subject": subject, **summaries.of(decision)})
    return tally, per_subject


@dataclass(frozen=True)
class Quota:
    """How much campaigning one company may ask of the vault."""

    subjects_per_day: int
    running: int


def check_quota(session: Session, *, now: datetime, client_id: str, subjects: int,
                quota: Quota) -> None:
    """Refuse a company over its own quota (429 with the wait), so others are not slowed."""
    running = session.exec(select(func.count()).select_from(Campaign).where(
        Campaign.client_id == client_id,
        col(Campaign.status).in_(("queued", "running")))).one()
    if running >= quota.running:
        raise TooManyRequests(
            f"{running} campaigns are still running; at most {quota.running} at once. "
            "Try again when one has finished.", retry_after=60)
    recent = session.exec(select(Campaign.created_at, Campaign.total).where(
        Campaign.client_id == client_id,
        col(Campaign.created_at) > now - timedelta(days=1))
        .order_by(col(Campaign.created_at))).all()
    used = sum(total for _, total in recent)
    if used + subjects > quota.subjects_per_day:
        freed, wait = used, 0
        for created_at, total in recent:
            freed -= total
            wait = math.ceil((created_at + timedelta(days=1) - now).total_seconds())
            if freed + subjects <= quota.subjects_per_day:
                break
        raise TooManyRequests(
            f"This campaign would take the company to {used + subjects} subjects in 24 hours; "
            f"its quota is {quota.subjects_per_day}.", retry_after=max(wait, 1))


def start(session: Session, *, clock: Clock, client: OAuthClient, request: CampaignRequest,
          quota: Quota) -> Campaign:
    """Store a real run within the company's quota; the background worker works it off."""
    validate(request)
    check_quota(session, now=clock.now(), client_id=client.client_id,
                subjects=len(request.subjects), quota=quota)
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
