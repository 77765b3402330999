"""Grants and consent records: giving, narrowing, revoking and relinquishing access.

Every change to a grant writes a consent record (who, what, when, which notice version) and an
audit entry in the same transaction, so the history can never disagree with the grant. A grant
that is not active, or is past its expiry, stops every token of it on the very next request:
the resource guard reads the grant each time instead of trusting the token alone.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.consent import events, receipts
from cmr_vault.consent.models import ConsentRecord, Grant, GrantStatus, Reminder
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.errors import NotFound, ValidationFailed
from cmr_vault.i18n import N_, gettext, ngettext
from cmr_vault.intents.models import ValueOffer
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import Scope, parse_scopes
from cmr_vault.policy.facts import GrantFacts
from cmr_vault.policy.lifecycle import Lifecycle


@dataclass(frozen=True)
class ConsentContext:
    """What every consent change needs: the time, the pseudonym key, the receipt signer and
    the policy's lifecycle rules (reaffirmation periods, reminder lead time).

    The signer is made when a receipt is first signed: building it reads the log's name from
    the database until a checkpoint pins it, and most requests that carry a context (token
    introspection, every OAuth endpoint) sign nothing.
    """

    clock: Clock
    pseudonym_key: bytes
    make_signer: Callable[[], receipts.ReceiptSigner]
    lifecycle: Lifecycle

    @functools.cached_property
    def signer(self) -> receipts.ReceiptSigner:
        """The receipt signer, made once per context."""
        return self.make_signer()


def scopes_of(grant: Grant) -> list[str]:
    """The grant's scopes, in the order they were granted."""
    return list(json.loads(grant.scopes))


def purposes_of(grant: Grant) -> dict[str, list[str]]:
    """Scope -> the purposes the customer consented to for it."""
    return dict(json.loads(grant.purposes))


def is_usable(grant: Grant, now: datetime) -> bool:
    """Active and not past its expiry."""
    return grant.status == GrantStatus.ACTIVE and (
        grant.expires_at is None or grant.expires_at > now
    )


def state_of(grant: Grant, now: datetime) -> str:
    """What a person should read: active, expired, revoked, relinquished or compromised."""
    if grant.status == GrantStatus.ACTIVE and not is_usable(grant, now):
        return "expired"
    return str(grant.status)


def dpv_status_of(grant: Grant, history: list[ConsentRecord], now: datetime) -> str:
    """The grant's W3C DPV consent status: given, renewed, withdrawn, expired, invalidated."""
    state = state_of(grant, now)
    if state == "expired":
        return receipts.dpv_status("expired")
    last = next((r.change for r in history if r.change not in ("reminded",)), "given")
    return receipts.dpv_status(last if state == "active" else state)


def _notice(client: OAuthClient) -> dict[str, list[str]]:
    return dict(json.loads(client.notice))


_COLLECTION = {"customer": "vault consent screen or portal", "company": "company API",
               "system": "vault lifecycle"}


def _record(session: Session, ctx: ConsentContext, *, grant: Grant, actor: str, change: str,
            removed: list[str] | None = None) -> None:
    """The history row, audit entry, receipt and company event of one change, all or none."""
    session.add(ConsentRecord(
        grant_id=grant.id, actor=actor, change=change, scopes=grant.scopes,
        removed=json.dumps(removed or []), expires_at=grant.expires_at,
        notice_version=grant.notice_version, at=ctx.clock.now()))
    subject = subject_pseudonym(ctx.pseudonym_key, grant.account_id)
    who = {"customer": f"customer:{subject}", "company": f"company:{grant.client_id}"}.get(
        actor, "system")
    expires = grant.expires_at.isoformat() if grant.expires_at else None
    entry = audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
        actor=who, action=f"grant.{change}", subject=subject, resource=f"grant:{grant.id}",
        outcome="ok", details={
            "company": grant.client_id, "scopes": scopes_of(grant), "removed": removed or [],
            "notice_version": grant.notice_version, "expires_at": expires}))
    company = oauth_service.get_client(session, grant.client_id)
    receipts.issue(session, ctx.signer, receipts.ConsentEvent(
        account_id=grant.account_id, principal=grant.pairwise_subject, company=company,
        change=change,
        actor=actor, collection_method=_COLLECTION.get(actor, "vault"),
        purposes=purposes_of(grant), expires_at=grant.expires_at,
        notice_version=grant.notice_version, audit_entry=entry,
        extra={"grantId": grant.id, "withdrawnCategories": removed or [],
               **_value_exchange(session, grant),
               **({"authorizationDetails": json.loads(grant.authorization_details)}
                  if grant.authorization_details else {})}))
    events.emit(session, clock=ctx.clock, client_id=grant.client_id, type=f"grant.{change}",
                data={"grant_id": grant.id, "subject": grant.pairwise_subject,
                      "status": state_of(grant, ctx.clock.now()),
                      "dpv_status": receipts.dpv_status(change), "scopes": scopes_of(grant),
                      "removed": removed or [], "expires_at": expires,
                      "notice_version": grant.notice_version})


def _value_exchange(session: Session, grant: Grant) -> dict[str, Any]:
    value = session.get(ValueOffer, grant.value_offer_id) if grant.value_offer_id else None
    if value is None:
        return {}
    return {"valueExchange": {"kind": value.kind, "description": value.description,
                              "fulfilled": grant.value_fulfilled_at is not None}}


def check_requestable(client: OAuthClient, requested: list[str]) -> list[Scope]:
    """The requested scopes, parsed, if the company may ask for every one of them."""
    scopes = parse_scopes(requested)
    allowed = set(json.loads(client.allowed_scopes))
    refused = [s.name for s in scopes if s.name not in allowed]
    if refused:
        raise ValidationFailed(
            f"{client.name} may not ask for {', '.join(refused)}.",
            problems={"scope": "not among the company's registered scopes"},
        )
    return scopes


@dataclass(frozen=True)
class Duration:
    """One answer to "for how long?" on the consent screen, and the end it really gets."""

    key: str
    label: str
    ends_at: datetime | None  # None: until the customer revokes it


# What the customer may ask for; the operator's reaffirmation periods may cap each of them.
DURATIONS = (("30d", N_("30 days"), timedelta(days=30)),
             ("1y", N_("1 year"), timedelta(days=365)),
             ("never", N_("Until you revoke it"), None))


def durations(ctx: ConsentContext, scopes: list[str]) -> list[Duration]:
    """The durations to offer for these scopes, each with the end that will be stored.

    The policy's reaffirmation period (policy.lifecycle) caps every choice, so a choice is
    labelled by what is kept, not by what was asked: "until you revoke it" only where no
    period applies, and a choice the cap makes equal to a shorter one is not offered at all.
    """
    now = ctx.clock.now()
    offered: list[Duration] = []
    for key, label, length in DURATIONS:
        asked = now + length if length is not None else None
        ends = ctx.lifecycle.bounded_expiry(scopes, asked, now)
        if any(d.ends_at == ends for d in offered):
            continue
        label = gettext(label)
        if ends != asked and ends is not None:
            days = (ends - now).days
            label = ngettext(
                "As long as allowed: %(num)d day, then you confirm it again",
                "As long as allowed: %(num)d days, then you confirm it again", days,
            ) % {"num": days}
        offered.append(Duration(key, label, ends))
    return offered


def give_consent(session: Session, ctx: ConsentContext, *, account_id: str,
                 client: OAuthClient, scopes: list[str], expires_at: datetime | None,
                 value_offer: ValueOffer | None = None,
                 purposes: dict[str, list[str]] | None = None,
                 authorization_details: str | None = None) -> Grant:
    """Record what the customer approved on the consent screen (a new or a changed grant).

    The customer may approve any subset of what was asked; each approved scope carries the
    purposes the company declared for it in the notice version shown. Where the policy asks
    for reaffirmation, the expiry is brought forward to that date. `purposes` narrows the
    notice's purposes for the scopes it names, and `authorization_details` (JSON) records what
    the company asked with RFC 9396 details, as approved.
    """
    parsed = check_requestable(client, scopes)
    if not parsed:
        raise ValidationFailed(
            "Choose at least one item to share, or deny the request.",
            problems={"scope": "nothing chosen"},
        )
    notice = _notice(client)
    names = [s.name for s in parsed]
    grant = grant_between(session, account_id=account_id, client_id=client.client_id)
    now = ctx.clock.now()
    change = "given"
    removed: list[str] = []
    if grant is None:
        grant = Grant(
            id=secrets.token_hex(16),
            account_id=account_id,
            client_id=client.client_id,
            pairwise_subject=oauth_service.subject_for(ctx.pseudonym_key, client, account_id),
            scopes="[]",
            purposes="{}",
            notice_version=client.notice_version,
            status=GrantStatus.ACTIVE,
            created_at=now,
            updated_at=now,
        )
    else:
        change = "renewed"
        removed = [s for s in scopes_of(grant) if s not in names] if is_usable(grant, now) else []
    grant.scopes = json.dumps(names)
    grant.purposes = json.dumps({name: (purposes or {}).get(name) or notice.get(name, [])
                                 for name in names})
    grant.authorization_details = authorization_details
    grant.notice_version = client.notice_version
    grant.notice_declined = None
    grant.status = GrantStatus.ACTIVE
    grant.expires_at = ctx.lifecycle.bounded_expiry(names, expires_at, now)
    grant.reminded_at = None
    grant.updated_at = now
    if value_offer is not None:
        grant.value_offer_id, grant.value_fulfilled_at = value_offer.id, None
    session.add(grant)
    session.flush()
    _record(session, ctx, grant=grant, actor="customer", change=change, removed=removed)
    return grant


def grant_between(session: Session, *, account_id: str, client_id: str) -> Grant | None:
    """The one grant (in whatever state) between a customer and a company, if any."""
    return session.exec(
        select(Grant).where(Grant.account_id == account_id).where(Grant.client_id == client_id)
    ).first()


def get_grant(session: Session, grant_id: str) -> Grant | None:
    """A grant by id, whatever its state."""
    return session.get(Grant, grant_id)


def _customers_grant(session: Session, account_id: str, grant_id: str) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None or grant.account_id != account_id:
        raise NotFound("You have no such connection.")
    return grant


def revoke(session: Session, ctx: ConsentContext, *, account_id: str, grant_id: str,
           scope: str | None = None) -> Grant:
    """The customer withdraws one scope, or the whole grant (and with it every token)."""
    grant = _customers_grant(session, account_id, grant_id)
    remaining = scopes_of(grant)
    if scope is not None and scope not in remaining:
        raise NotFound("That permission is not part of this connection.")
    if scope is None or len(remaining) == 1:
        return _end(session, ctx, grant=grant, status=GrantStatus.REVOKED, actor="customer",
                    change="revoked")
    remaining.remove(scope)
    purposes = purposes_of(grant)
    purposes.pop(scope, None)
    grant.scopes, grant.purposes = json.dumps(remaining), json.dumps(purposes)
    grant.updated_at = ctx.clock.now()
    session.add(grant)
    session.flush()
    _record(session, ctx, grant=grant, actor="customer", change="narrowed", removed=[scope])
    return grant


def _end(session: Session, ctx: ConsentContext, *, grant: Grant, status: GrantStatus,
         actor: str, change: str) -> Grant:
    """Stop a whole grant: its status, every token of it, and the record of who and why."""
    grant.status = status
    grant.updated_at = ctx.clock.now()
    session.add(grant)
    oauth_service.revoke_grant_tokens(session, clock=ctx.clock, grant_id=grant.id)
    session.flush()
    _record(session, ctx, grant=grant, actor=actor, change=change, removed=scopes_of(grant))
    return grant


def grant_held_by(session: Session, *, client_id: str, grant_id: str) -> Grant:
    """One grant as its company may address it, or NotFound.

    A grant the company gave up is gone from its API (the customer's connections page and the
    audit log keep its history): addressing it again is a 404, like any other unknown grant.
    """
    grant = session.get(Grant, grant_id)
    if grant is None or grant.client_id != client_id or grant.status == GrantStatus.RELINQUISHED:
        raise NotFound("No such grant for this company.")
    return grant


def relinquish(session: Session, ctx: ConsentContext, *, client_id: str,
               grant_id: str) -> Grant:
    """A company gives up a grant it no longer needs."""
    grant = grant_held_by(session, client_id=client_id, grant_id=grant_id)
    return _end(session, ctx, grant=grant, status=GrantStatus.RELINQUISHED, actor="company",
                change="relinquished")


def mark_compromised(session: Session, ctx: ConsentContext, *, grant_id: str) -> None:
    """A replayed code or refresh token: stop the grant until the customer consents again."""
    grant = session.get(Grant, grant_id)
    if grant is None or grant.status != GrantStatus.ACTIVE:
        return
    _end(session, ctx, grant=grant, status=GrantStatus.COMPROMISED, actor="system",
         change="compromised")


# --- expiry, reminders and renewal -------------------------------------------------------------


def renewal_term(session: Session, ctx: ConsentContext, grant: Grant) -> timedelta | None:
    """How far one renewal reaches: the term the customer chose last time (from that consent
    to its expiry), never beyond the policy's reaffirmation period; None if neither sets one."""
    last = session.exec(
        select(ConsentRecord).where(ConsentRecord.grant_id == grant.id)
        .where(col(ConsentRecord.change).in_(("given", "renewed", "widened")))
        .order_by(col(ConsentRecord.id).desc())
    ).first()
    own = (max(last.expires_at - last.at, timedelta(days=1))
           if last is not None and last.expires_at is not None else None)
    days = ctx.lifecycle.reaffirm_days(scopes_of(grant))
    policy = timedelta(days=days) if days is not None else None
    terms = [term for term in (own, policy) if term is not None]
    return min(terms) if terms else None


def renew(session: Session, ctx: ConsentContext, *, account_id: str, grant_id: str) -> Grant:
    """One step: the same permissions for another term, before or after they lapsed."""
    grant = _customers_grant(session, account_id, grant_id)
    if grant.status not in (GrantStatus.ACTIVE, GrantStatus.EXPIRED):
        raise ValidationFailed("Only an active or expired connection can be renewed; give "
                               "consent again from the company's site.",
                               problems={"grant": f"is {grant.status}"})
    term = renewal_term(session, ctx, grant)
    if term is None:
        raise ValidationFailed("This connection does not expire, so there is nothing to renew.",
                               problems={"grant": "has no expiry"})
    now = ctx.clock.now()
    grant.status, grant.expires_at = GrantStatus.ACTIVE, now + term
    grant.reminded_at, grant.updated_at = None, now
    session.add(grant)
    session.flush()
    _record(session, ctx, grant=grant, actor="customer", change="renewed")
    return grant


def lapse_due(session: Session, ctx: ConsentContext) -> int:
    """Record every grant that passed its expiry as expired (reads and pushes stopped at the
    expiry itself: the guard and the policy compare times; this writes the history)."""
    now = ctx.clock.now()
    due = session.exec(
        select(Grant).where(Grant.status == GrantStatus.ACTIVE)
        .where(col(Grant.expires_at).is_not(None)).where(col(Grant.expires_at) <= now)
        .limit(500).with_for_update(skip_locked=True)
    ).all()
    for grant in due:
        grant.status, grant.updated_at = GrantStatus.EXPIRED, now
        session.add(grant)
        session.flush()
        _record(session, ctx, grant=grant, actor="system", change="expired")
    return len(due)


def remind_due(session: Session, ctx: ConsentContext) -> int:
    """Put a reminder in the inbox of every customer whose grant lapses within the lead time."""
    now = ctx.clock.now()
    due = session.exec(
        select(Grant).where(Grant.status == GrantStatus.ACTIVE)
        .where(col(Grant.reminded_at).is_(None)).where(col(Grant.expires_at).is_not(None))
        .where(col(Grant.expires_at) > now)
        .where(col(Grant.expires_at) <= now + ctx.lifecycle.remind_before)
        .limit(500).with_for_update(skip_locked=True)
    ).all()
    for grant in due:
        assert grant.expires_at is not None
        grant.reminded_at = now
        session.add(grant)
        remind(session, ctx, account_id=grant.account_id, client_id=grant.client_id,
               kind="grant", target=grant.id, lapses_at=grant.expires_at)
    return len(due)


def remind(session: Session, ctx: ConsentContext, *, account_id: str, client_id: str,
           kind: str, target: str, lapses_at: datetime) -> None:
    """One reminder in the customer's inbox, and its audit entry."""
    session.add(Reminder(account_id=account_id, client_id=client_id, kind=kind, target=target,
                         lapses_at=lapses_at, created_at=ctx.clock.now()))
    subject = subject_pseudonym(ctx.pseudonym_key, account_id)
    audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
        actor="system", action=f"{kind}.reminded", subject=subject,
        resource=f"{kind}:{target}",
        details={"company": client_id, "lapses_at": lapses_at.isoformat()}))


def reminders_of(session: Session, account_id: str, *, limit: int = 50) -> list[Reminder]:
    """The customer's reminders, newest first."""
    return list(session.exec(
        select(Reminder).where(Reminder.account_id == account_id)
        .order_by(col(Reminder.id).desc()).limit(limit)).all())


# --- a newer notice: ask, never widen by itself -------------------------------------------------


@dataclass(frozen=True)
class NoticeChange:
    """What a newer notice of a company would add to a grant, if the customer agrees."""

    grant: Grant
    company: OAuthClient
    added: dict[str, list[str]]


def _added_purposes(grant: Grant, client: OAuthClient) -> dict[str, list[str]]:
    notice, held = _notice(client), purposes_of(grant)
    added = {scope: [p for p in notice.get(scope, []) if p not in held.get(scope, [])]
             for scope in scopes_of(grant)}
    return {scope: purposes for scope, purposes in added.items() if purposes}


def pending_notices(session: Session, *, account_id: str, now: datetime) -> list[NoticeChange]:
    """Usable grants whose company published a notice that would widen them, not yet declined."""
    result = []
    for grant in session.exec(select(Grant).where(Grant.account_id == account_id)).all():
        if not is_usable(grant, now):
            continue
        client = oauth_service.get_client(session, grant.client_id)
        if client.notice_version <= max(grant.notice_version, grant.notice_declined or 0):
            continue
        added = _added_purposes(grant, client)
        if added:
            result.append(NoticeChange(grant, client, added))
    return result


def answer_notice(session: Session, ctx: ConsentContext, *, account_id: str, grant_id: str,
                  agree: bool) -> Grant:
    """The customer takes up the newer notice (the grant widens) or keeps the grant as it was."""
    grant = _customers_grant(session, account_id, grant_id)
    client = oauth_service.get_client(session, grant.client_id)
    if not is_usable(grant, ctx.clock.now()):
        raise ValidationFailed("This connection is not active.", problems={"grant": "inactive"})
    if not agree:
        grant.notice_declined = client.notice_version
        session.add(grant)
        return grant
    purposes = purposes_of(grant)
    for scope, added in _added_purposes(grant, client).items():
        purposes[scope] = [*purposes.get(scope, []), *added]
    grant.purposes, grant.notice_version = json.dumps(purposes), client.notice_version
    grant.notice_declined, grant.updated_at = None, ctx.clock.now()
    session.add(grant)
    session.flush()
    _record(session, ctx, grant=grant, actor="customer", change="widened")
    return grant


@dataclass(frozen=True)
class Connection:
    """A grant as the customer sees it on the Connections page."""

    grant: Grant
    company: OAuthClient
    state: str
    scopes: list[Scope]
    purposes: dict[str, list[str]]
    history: list[ConsentRecord]
    dpv_status: str
    value_offer: ValueOffer | None

    @property
    def renewable(self) -> bool:
        """An expiring grant still in force, or one that lapsed: renewal is one step."""
        return self.grant.expires_at is not None and self.state in ("active", "expired")


def connections(session: Session, *, account_id: str, now: datetime) -> list[Connection]:
    """Every company that has (or had) access, newest change first, with its history."""
    grants = session.exec(
        select(Grant).where(Grant.account_id == account_id).order_by(col(Grant.updated_at).desc())
    ).all()
    result = []
    for grant in grants:
        history = session.exec(
            select(ConsentRecord)
            .where(ConsentRecord.grant_id == grant.id)
            .order_by(col(ConsentRecord.id).desc())
        ).all()
        result.append(
            Connection(
                grant=grant,
                company=oauth_service.get_client(session, grant.client_id),
                state=state_of(grant, now),
                scopes=parse_scopes(scopes_of(grant)),
                purposes=purposes_of(grant),
                history=list(history),
                dpv_status=dpv_status_of(grant, list(history), now),
                value_offer=session.get(ValueOffer, grant.value_offer_id)
                if grant.value_offer_id else None,
            )
        )
    return result


def grants_of_client(session: Session, *, client_id: str) -> list[Grant]:
    """The grants a company holds (for its own API), newest first; not those it gave up."""
    return list(
        session.exec(
            select(Grant).where(Grant.client_id == client_id)
            .where(Grant.status != GrantStatus.RELINQUISHED)
            .order_by(col(Grant.updated_at).desc())
        ).all()
    )


def grant_facts(grant: Grant | None, *, scope: str, in_force: frozenset[str], now: datetime
                ) -> GrantFacts:
    """What the policy engine may know of a grant, for one scope being used."""
    if grant is None:
        return GrantFacts()
    return GrantFacts(
        exists=True, status=state_of(grant, now), expires_at=grant.expires_at,
        scopes=in_force, purposes=frozenset(purposes_of(grant).get(scope, [])),
    )


def export_grants(session: Session, *, account_id: str, now: datetime) -> list[dict[str, Any]]:
    """Every grant the customer gave, with its full consent history, for the data export."""
    return [
        {
            "company": {"client_id": c.company.client_id, "name": c.company.name},
            "state": c.state,
            "scopes": [s.name for s in c.scopes],
            "purposes": c.purposes,
            "notice_version": c.grant.notice_version,
            "granted_at": c.grant.created_at.isoformat(),
            "expires_at": c.grant.expires_at.isoformat() if c.grant.expires_at else None,
            "company_pseudonym_for_you": c.grant.pairwise_subject,
            "dpv_status": c.dpv_status,
            "history": [{"at": r.at.isoformat(), "change": r.change, "by": r.actor,
                         "scopes": json.loads(r.scopes), "removed": json.loads(r.removed),
                         "notice_version": r.notice_version} for r in c.history],
        }
        for c in connections(session, account_id=account_id, now=now)
    ]


# --- marketing opt-ins: receipts and company events for the preference center's changes ------


def opt_in_changed(session: Session, ctx: ConsentContext, *, account_id: str, client_id: str,
                   channel: str, change: str, expires_at: datetime | None,
                   audit_entry: audit_service.AppendedEntry) -> None:
    """A marketing opt-in was given, renewed, withdrawn or lapsed: the customer's receipt and,
    when it stops messages, the company's event."""
    grant = grant_between(session, account_id=account_id, client_id=client_id)
    company = oauth_service.get_client(session, client_id)
    scope = f"marketing.{channel}"
    purposes = purposes_of(grant).get(scope, []) if grant else []
    receipts.issue(session, ctx.signer, receipts.ConsentEvent(
        account_id=account_id,
        principal=oauth_service.subject_for(ctx.pseudonym_key, company, account_id),
        company=company, change=change, actor="system" if change == "expired" else "customer",
        collection_method=_COLLECTION["system" if change == "expired" else "customer"],
        purposes={f"opt-in.{channel}": purposes}, expires_at=expires_at,
        notice_version=grant.notice_version if grant else company.notice_version,
        audit_entry=audit_entry, extra={"channel": channel}))
    if change in ("withdrawn", "expired") and grant is not None:
        events.emit(session, clock=ctx.clock, client_id=client_id, type=f"marketing.{change}",
                    data={"grant_id": grant.id, "subject": grant.pairwise_subject,
                          "channel": channel, "dpv_status": receipts.dpv_status(change)})


def customer_erased(session: Session, ctx: ConsentContext, *, account_id: str) -> None:
    """Before an account goes: tell every company that held a grant to forget the customer."""
    for grant in session.exec(select(Grant).where(Grant.account_id == account_id)).all():
        events.emit(session, clock=ctx.clock, client_id=grant.client_id, type="customer.erased",
                    data={"grant_id": grant.id, "subject": grant.pairwise_subject,
                          "dpv_status": receipts.dpv_status("withdrawn")})
