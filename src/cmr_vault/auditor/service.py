"""Searching the audit log, reporting on it and recording integrity checks.

Auditors see only what the log holds: pseudonyms, company ids, actions, outcomes, rule ids and
reasons. No query here touches profiles or keys, so no personal data can reach an auditor.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.audit import transparency
from cmr_vault.audit.models import AuditCheckpoint, AuditEntry
from cmr_vault.audit.verify import VerifyReport, verify_database
from cmr_vault.auditor import activity
from cmr_vault.clock import Clock
from cmr_vault.consent import events
from cmr_vault.oauth import service as oauth_service
from cmr_vault.policy.cases import replay
from cmr_vault.policy.engine import PolicySet

PAGE_SIZE = 100
VERIFIED_ACTION = "audit.verified"


@dataclass(frozen=True)
class LogFilter:
    """What an auditor narrows the log to; empty means any."""

    company: str = ""
    subject: str = ""
    action: str = ""
    outcome: str = ""
    reason: str = ""
    since: datetime | None = None
    until: datetime | None = None


def search(session: Session, flt: LogFilter, *, before: int | None = None,
           limit: int = PAGE_SIZE) -> list[AuditEntry]:
    """The newest entries matching the filter, `limit` at a time, older than `before`."""
    query = select(AuditEntry)
    if flt.company:
        query = query.where(activity.company_clause(flt.company))
    if flt.subject:
        query = query.where(AuditEntry.subject == flt.subject)
    if flt.action:
        query = query.where(col(AuditEntry.action).startswith(flt.action))
    if flt.outcome:
        query = query.where(AuditEntry.outcome == flt.outcome)
    if flt.reason:
        query = query.where(col(AuditEntry.details).contains(flt.reason))
    if flt.since:
        query = query.where(col(AuditEntry.recorded_at) >= flt.since)
    if flt.until:
        query = query.where(col(AuditEntry.recorded_at) < flt.until)
    if before:
        query = query.where(col(AuditEntry.seq) < before)
    return list(session.exec(query.order_by(col(AuditEntry.seq).desc()).limit(limit)).all())


def entry(session: Session, seq: int) -> AuditEntry | None:
    """One entry by sequence number."""
    return session.get(AuditEntry, seq)


@dataclass
class CompanyReport:
    """A company's activity over time, by day, as counts only."""

    company: str
    days: dict[date, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    refusals_by_reason: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)

    def series(self, name: str) -> list[tuple[date, int]]:
        """(day, count) for one measure, every day from the first to the last with activity
        (quiet days as 0, so the chart's day axis runs evenly), oldest first."""
        if not self.days:
            return []
        first, last = min(self.days), max(self.days)
        return [(first + timedelta(days=n), self.days.get(first + timedelta(days=n),
                                                          Counter())[name])
                for n in range((last - first).days + 1)]


# A push figure's name in the report; a deferred or refused push is still one push.
_PUSH_MEASURES = {
    activity.PushCount.ACCEPTED: "pushes",
    activity.PushCount.DEFERRED: "pushes deferred",
    activity.PushCount.REFUSED: "pushes refused",
    activity.PushCount.SENT: "pushes sent",
    activity.PushCount.CHECKED: "consent checks",
}


def _measure(entry: AuditEntry) -> str | None:
    action, outcome = entry.action, entry.outcome
    if action == "profile.read":
        return "reads" if outcome == "allow" else "reads refused"
    if action.startswith("push."):
        counted = activity.push_count(action, outcome)
        return _PUSH_MEASURES[counted] if counted else None
    if action == "grant.revoked":
        return "revocations"
    if action.startswith("grant."):
        return "consent changes"
    if action.startswith("token."):
        return "tokens"
    return None


def company_report(session: Session, *, company: str, since: datetime | None = None,
                   until: datetime | None = None) -> CompanyReport:
    """Reads, pushes, refusals by reason, consent changes and revocations, per day."""
    report = CompanyReport(company)
    for item in activity.company_entries(session, company, since=since, until=until):
        measure = _measure(item)
        if measure is None:
            continue
        report.days[item.recorded_at.date()][measure] += 1
        report.totals[measure] += 1
        if item.outcome not in ("allow", "ok", "accepted", "queued"):
            for reason in json.loads(item.details).get("reasons", []):
                report.refusals_by_reason[reason] += 1
    return report


@dataclass(frozen=True)
class IntegrityStatus:
    """The latest signed head and what the last full verification found."""

    log_size: int
    latest_checkpoint: AuditCheckpoint | None
    last_verification: AuditEntry | None


def integrity(session: Session) -> IntegrityStatus:
    """Where the log stands and when it was last verified end to end."""
    last = session.exec(select(AuditEntry).where(AuditEntry.action == VERIFIED_ACTION)
                        .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    return IntegrityStatus(transparency.log_size(session),
                           transparency.latest_checkpoint(session), last)


def verify_now(session: Session, *, verifier_key: str, clock: Clock, auditor: str
               ) -> VerifyReport:
    """Verify the whole log and record the result in the log itself."""
    report = verify_database(session, verifier_key=verifier_key)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=auditor, action=VERIFIED_ACTION, resource="audit-log",
        outcome="ok" if report.ok else "broken",
        details={"entries": report.entries, "checkpoints": report.checkpoints,
                 "first_broken_seq": report.first_broken_seq, "problems": report.problems[:5]},
    ))
    return report


@dataclass(frozen=True)
class Replay:
    """A recorded decision decided again from its recorded facts by today's policy set."""

    item: str
    recorded_outcome: str
    recorded_rules: list[str]
    recorded_version: str
    replayed_outcome: str
    replayed_rules: list[str]
    replayed_reasons: list[str]
    current_version: str

    @property
    def same(self) -> bool:
        """Whether today's rules reach the same outcome."""
        return self.recorded_outcome == self.replayed_outcome


def replay_entry(found: AuditEntry, policy: PolicySet) -> list[Replay]:
    """Replay every decision recorded in an entry ("why was this allowed?")."""
    recorded = json.loads(found.details).get("decisions", {})
    replays = []
    for item, record in sorted(recorded.items()):
        again = replay(policy, record)
        replays.append(Replay(item, record["outcome"], record["rule_ids"],
                              record["policy_version"], str(again.outcome), again.rule_ids,
                              again.reasons, policy.version))
    return replays


@dataclass(frozen=True)
class Backlog:
    """A company's consent changes it has not acknowledged following, and the oldest's age."""

    client_id: str
    company: str
    count: int
    oldest: datetime
    age: timedelta


def unacknowledged_changes(session: Session, *, now: datetime) -> list[Backlog]:
    """Per company, oldest backlog first: what it has been told but not confirmed."""
    return [Backlog(b.client_id, oauth_service.get_client(session, b.client_id).name, b.count,
                    b.oldest, b.age(now))
            for b in events.unacknowledged_by_company(session)]


@dataclass(frozen=True)
class Actor:
    """Who an entry's actor is, in words: a company by its name (with its client id, to link
    to its report), anyone else by kind and a short pseudonym."""

    raw: str
    kind: str
    name: str
    client_id: str = ""


def actors(session: Session, entries: list[AuditEntry]) -> dict[str, Actor]:
    """The actors of `entries`, each named once (one query for all their companies)."""
    raw = {e.actor for e in entries}
    ids = {a.removeprefix("company:") for a in raw if a.startswith("company:")}
    names = {c.client_id: c.name for c in oauth_service.list_clients(session)
             if c.client_id in ids}
    named: dict[str, Actor] = {}
    for actor in raw:
        kind, _, rest = actor.partition(":")
        if kind == "company":
            named[actor] = Actor(actor, kind, names.get(rest, rest), client_id=rest)
        else:
            named[actor] = Actor(actor, kind, rest[:10] if rest else "")
    return named


def companies(session: Session) -> list[tuple[str, str]]:
    """(client id, name) of every registered company, by name, for links to their reports."""
    return sorted(((c.client_id, c.name) for c in oauth_service.list_clients(session)),
                  key=lambda pair: pair[1].casefold())
