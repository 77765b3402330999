"""Grants and consent records: giving, narrowing, revoking and relinquishing access.

Every change to a grant writes a consent record (who, what, when, which notice version) and an
audit entry in the same transaction, so the history can never disagree with the grant. A grant
that is not active, or is past its expiry, stops every token of it on the very next request:
the resource guard reads the grant each time instead of trusting the token alone.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.consent.models import ConsentRecord, Grant, GrantStatus
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.errors import NotFound, ValidationFailed
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import Scope, parse_scopes
from cmr_vault.policy.facts import GrantFacts


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


def _notice(client: OAuthClient) -> dict[str, list[str]]:
    return dict(json.loads(client.notice))


def _record(
    session: Session,
    *,
    clock: Clock,
    pseudonym_key: bytes,
    grant: Grant,
    actor: str,
    change: str,
    removed: list[str] | None = None,
) -> None:
    session.add(
        ConsentRecord(
            grant_id=grant.id,
            actor=actor,
            change=change,
            scopes=grant.scopes,
            removed=json.dumps(removed or []),
            expires_at=grant.expires_at,
            notice_version=grant.notice_version,
            at=clock.now(),
        )
    )
    who = (
        f"customer:{subject_pseudonym(pseudonym_key, grant.account_id)}"
        if actor == "customer"
        else f"company:{grant.client_id}"
        if actor == "company"
        else "system"
    )
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=who,
            action=f"grant.{change}",
            subject=subject_pseudonym(pseudonym_key, grant.account_id),
            resource=f"grant:{grant.id}",
            outcome="ok",
            details={
                "company": grant.client_id,
                "scopes": scopes_of(grant),
                "removed": removed or [],
                "notice_version": grant.notice_version,
                "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
            },
        ),
    )


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


def give_consent(
    session: Session,
    *,
    clock: Clock,
    pseudonym_key: bytes,
    account_id: str,
    client: OAuthClient,
    scopes: list[str],
    expires_at: datetime | None,
) -> Grant:
    """Record what the customer approved on the consent screen (a new or a changed grant).

    The customer may approve any subset of what was asked; each approved scope carries the
    purposes the company declared for it in the notice version shown.
    """
    parsed = check_requestable(client, scopes)
    if not parsed:
        raise ValidationFailed(
            "Choose at least one item to share, or deny the request.",
            problems={"scope": "nothing chosen"},
        )
    notice = _notice(client)
    names = [s.name for s in parsed]
    grant = session.exec(
        select(Grant)
        .where(Grant.account_id == account_id)
        .where(Grant.client_id == client.client_id)
    ).first()
    now = clock.now()
    change = "given"
    removed: list[str] = []
    if grant is None:
        grant = Grant(
            id=secrets.token_hex(16),
            account_id=account_id,
            client_id=client.client_id,
            pairwise_subject=oauth_service.pairwise_subject(
                pseudonym_key, client.client_id, account_id
            ),
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
    grant.purposes = json.dumps({name: notice.get(name, []) for name in names})
    grant.notice_version = client.notice_version
    grant.status = GrantStatus.ACTIVE
    grant.expires_at = expires_at
    grant.updated_at = now
    session.add(grant)
    session.flush()
    _record(
        session,
        clock=clock,
        pseudonym_key=pseudonym_key,
        grant=grant,
        actor="customer",
        change=change,
        removed=removed,
    )
    return grant


def get_grant(session: Session, grant_id: str) -> Grant | None:
    """A grant by id, whatever its state."""
    return session.get(Grant, grant_id)


def _customers_grant(session: Session, account_id: str, grant_id: str) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None or grant.account_id != account_id:
        raise NotFound("You have no such connection.")
    return grant


def revoke(
    session: Session,
    *,
    clock: Clock,
    pseudonym_key: bytes,
    account_id: str,
    grant_id: str,
    scope: str | None = None,
) -> Grant:
    """The customer withdraws one scope, or the whole grant (and with it every token)."""
    grant = _customers_grant(session, account_id, grant_id)
    remaining = scopes_of(grant)
    if scope is not None and scope not in remaining:
        raise NotFound("That permission is not part of this connection.")
    if scope is not None and len(remaining) > 1:
        remaining.remove(scope)
        purposes = purposes_of(grant)
        purposes.pop(scope, None)
        grant.scopes, grant.purposes = json.dumps(remaining), json.dumps(purposes)
        change, removed = "narrowed", [scope]
    else:
        return _end(session, clock=clock, pseudonym_key=pseudonym_key, grant=grant,
                    status=GrantStatus.REVOKED, actor="customer", change="revoked")
    grant.updated_at = clock.now()
    session.add(grant)
    session.flush()
    _record(session, clock=clock, pseudonym_key=pseudonym_key, grant=grant, actor="customer",
            change=change, removed=removed)
    return grant


def _end(session: Session, *, clock: Clock, pseudonym_key: bytes, grant: Grant,
         status: GrantStatus, actor: str, change: str) -> Grant:
    """Stop a whole grant: its status, every token of it, and the record of who and why."""
    grant.status = status
    grant.updated_at = clock.now()
    session.add(grant)
    oauth_service.revoke_grant_tokens(session, clock=clock, grant_id=grant.id)
    session.flush()
    _record(session, clock=clock, pseudonym_key=pseudonym_key, grant=grant, actor=actor,
            change=change, removed=scopes_of(grant))
    return grant


def relinquish(
    session: Session, *, clock: Clock, pseudonym_key: bytes, client_id: str, grant_id: str
) -> Grant:
    """A company gives up a grant it no longer needs."""
    grant = session.get(Grant, grant_id)
    if grant is None or grant.client_id != client_id:
        raise NotFound("No such grant for this company.")
    return _end(session, clock=clock, pseudonym_key=pseudonym_key, grant=grant,
                status=GrantStatus.RELINQUISHED, actor="company", change="relinquished")


def mark_compromised(
    session: Session, *, clock: Clock, pseudonym_key: bytes, grant_id: str
) -> None:
    """A replayed code or refresh token: stop the grant until the customer consents again."""
    grant = session.get(Grant, grant_id)
    if grant is None or grant.status != GrantStatus.ACTIVE:
        return
    _end(session, clock=clock, pseudonym_key=pseudonym_key, grant=grant,
         status=GrantStatus.COMPROMISED, actor="system", change="compromised")


@dataclass(frozen=True)
class Connection:
    """A grant as the customer sees it on the Connections page."""

    grant: Grant
    company: OAuthClient
    state: str
    scopes: list[Scope]
    purposes: dict[str, list[str]]
    history: list[ConsentRecord]


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
            )
        )
    return result


def grants_of_client(session: Session, *, client_id: str) -> list[Grant]:
    """The grants a company holds (for its own API), newest first."""
    return list(
        session.exec(
            select(Grant).where(Grant.client_id == client_id).order_by(col(Grant.updated_at).desc())
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
            "history": [{"at": r.at.isoformat(), "change": r.change, "by": r.actor,
                         "scopes": json.loads(r.scopes), "removed": json.loads(r.removed),
                         "notice_version": r.notice_version} for r in c.history],
        }
        for c in connections(session, account_id=account_id, now=now)
    ]
