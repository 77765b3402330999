"""The customer's profile: sealed storage, export and erasure.

Every value is sealed under the owner's data key before it reaches the session, and opened only
for the owner or for a company whose grant and the policy engine allow it. Erasure destroys the
data key first: from that moment every copy of the profile, in this database or any backup of it,
is unreadable.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam
from sqlmodel import Session, col, delete, select

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Account, Role
from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock, utc_iso
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.consent.service import ConsentContext
from cmr_vault.crypto.blind_index import blind_index, subject_pseudonym
from cmr_vault.crypto.data_keys import DataKeyStore
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.db.membership import one_of
from cmr_vault.errors import NotFound, ValidationFailed
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import read_scope
from cmr_vault.policy.cases import decision_record
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import Action, Decision, DecisionRequest, Facts, GrantFacts
from cmr_vault.vault.fields import CUSTOM_PREFIX, MAX_CUSTOM_FIELDS, normalise_changes
from cmr_vault.vault.models import ProfileField

EXPORT_FORMAT = "cmr-vault/export/v1"


@dataclass(frozen=True)
class Profile:
    """An opened profile, shaped for people and for export."""

    standard: dict[str, str] = field(default_factory=dict)
    interests: list[str] = field(default_factory=list)
    identities: list[dict[str, str]] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, values: dict[str, str]) -> Profile:
        """Rebuild the structured profile from opened field strings."""
        profile = cls()
        for name, value in sorted(values.items()):
            if name == "interests":
                profile.interests.extend(json.loads(value))
            elif name == "identities":
                profile.identities.extend(json.loads(value))
            elif name.startswith(CUSTOM_PREFIX):
                profile.custom[name.removeprefix(CUSTOM_PREFIX)] = value
            else:
                profile.standard[name] = value
        return profile


_FIELD_TABLE = ProfileField.__table__  # type: ignore[attr-defined]
_ALL_FIELDS = select(
    _FIELD_TABLE.c.name_index, _FIELD_TABLE.c.sealed_name, _FIELD_TABLE.c.sealed
).where(_FIELD_TABLE.c.account_id == bindparam("account_id"))
_NAMED_FIELDS = _ALL_FIELDS.where(
    _FIELD_TABLE.c.name_index.in_(bindparam("wanted", expanding=True)))


def read_fields(
    session: Session | Connection, *, cipher: FieldCipher, account_id: str,
    names: Iterable[str] | None = None,
) -> dict[str, str]:
    """Open the stored fields of one owner (all, or just `names`).

    One Core query (a company read runs this on a read-only connection of its own), and one
    key-store lookup per key version for the names and values together.
    """
    if names is None:
        rows = session.execute(_ALL_FIELDS, {"account_id": account_id}).all()
    else:
        rows = session.execute(_NAMED_FIELDS, {
            "account_id": account_id,
            "wanted": [cipher.name_index(account_id, name) for name in names]}).all()
    return cipher.open_named(account_id, {
        row.name_index: (row.sealed_name, row.sealed) for row in rows})


def sealed_field_many(session: Session, *, cipher: FieldCipher, account_ids: Iterable[str],
                      name: str) -> dict[str, bytes]:
    """One standard field of many owners, still sealed, in one query (for bulk decisions,
    which open it with every other sealed fact of a chunk: `FieldCipher.open_many`).

    The row is found by its name's blind index, and the value's seal binds the owner and the
    name, so the sealed name need not be opened to know what the value is.
    """
    by_index = {cipher.name_index(account_id, name): account_id for account_id in account_ids}
    if not by_index:
        return {}
    # By owner alone: with a second IN on `name_index`, SQLite probes the primary key for
    # every (owner, index) pair, the square of the chunk.
    rows = session.connection().execute(select(ProfileField.name_index, ProfileField.sealed).where(
        one_of(col(ProfileField.account_id), set(by_index.values()),
               dialect=session.get_bind().dialect.name)))
    return {by_index[index]: sealed for index, sealed in rows if index in by_index}


def _by_name(
    cipher: FieldCipher, account_id: str, rows: Iterable[ProfileField]
) -> dict[str, ProfileField]:
    """Rows keyed by their opened field names."""
    by_index = {row.name_index: row for row in rows}
    names = cipher.open_names(account_id, {i: row.sealed_name for i, row in by_index.items()})
    return {names[index]: row for index, row in by_index.items()}


def read_profile(session: Session, *, cipher: FieldCipher, account_id: str) -> Profile:
    """The owner's whole profile, opened."""
    return Profile.from_fields(read_fields(session, cipher=cipher, account_id=account_id))


def _audit_field_name(pseudonym_key: bytes, account_id: str, name: str) -> str:
    """Custom field names are the customer's words and may say too much: log a keyed hash,
    keyed per customer too, so two customers' equal custom names do not match in the log."""
    if name.startswith(CUSTOM_PREFIX):
        return "custom:" + blind_index(pseudonym_key, "custom-field",
                                       f"{account_id}\x00{name}")[:12]
    return name


def logged_custom_names(session: Session, *, cipher: FieldCipher, pseudonym_key: bytes,
                        account_id: str) -> dict[str, str]:
    """The log's keyed hash of each custom field the customer has now, with its name: opened
    for the customer's own activity page, so they read "shoe_size" where the log says
    `custom:895bbbe7686f`."""
    names = _by_name(cipher, account_id, session.exec(
        select(ProfileField).where(ProfileField.account_id == account_id)).all())
    return {_audit_field_name(pseudonym_key, account_id, name): name.removeprefix(CUSTOM_PREFIX)
            for name in names if name.startswith(CUSTOM_PREFIX)}


def update_profile(
    session: Session,
    *,
    cipher: FieldCipher,
    clock: Clock,
    index_key: bytes,
    pseudonym_key: bytes,
    account: Account,
    changes: dict[str, Any],
) -> list[str]:
    """Validate every change first, then seal and store; returns the names that changed."""
    cleaned = normalise_changes(changes)
    existing = _by_name(cipher, account.id, session.exec(
        select(ProfileField).where(ProfileField.account_id == account.id)).all())
    _check_custom_limit(existing, cleaned)
    if cleaned.get("email"):
        accounts_service.change_email(
            session, index_key=index_key, account=account, email=str(cleaned["email"])
        )
    # A form sends every field: only those whose value differs are written and logged, so the
    # customer's activity says "you changed your city", not every field on each save.
    stored = cipher.open_fields(account.id, {
        name: row.sealed for name, row in existing.items() if name in cleaned})
    cleaned = {name: value for name, value in cleaned.items() if stored.get(name) != value}
    to_seal = {name: value for name, value in cleaned.items() if value is not None}
    sealed = cipher.seal_named(account.id, to_seal)
    now = clock.now()
    changed: list[str] = []
    for name, value in cleaned.items():
        row = existing.get(name)
        if value is None:
            if row is not None and name != "email":
                session.delete(row)
                changed.append(name)
            continue
        if row is None:
            row = ProfileField(account_id=account.id, name_index=sealed[name].name_index,
                               sealed_name=sealed[name].sealed_name, sealed=b"", updated_at=now)
        row.sealed, row.updated_at = sealed[name].sealed, now
        session.add(row)
        changed.append(name)
    if changed:
        audit_service.record(
            session,
            clock=clock,
            event=audit_service.AuditEvent(
                actor=accounts_service.actor_for(pseudonym_key, account),
                action="profile.updated",
                subject=subject_pseudonym(pseudonym_key, account.id),
                resource="profile",
                details={"fields": sorted(_audit_field_name(pseudonym_key, account.id, n)
                                         for n in changed)},
            ),
        )
    return changed


def _check_custom_limit(existing: dict[str, ProfileField], cleaned: dict[str, str | None]) -> None:
    names = {n for n in existing if n.startswith(CUSTOM_PREFIX)}
    names |= {n for n, v in cleaned.items() if n.startswith(CUSTOM_PREFIX) and v is not None}
    names -= {n for n, v in cleaned.items() if v is None}
    if len(names) > MAX_CUSTOM_FIELDS:
        raise ValidationFailed(
            f"At most {MAX_CUSTOM_FIELDS} custom fields; nothing was saved.",
            problems={"custom": f"at most {MAX_CUSTOM_FIELDS} custom fields"},
        )


def sign_up_customer(
    session: Session,
    *,
    cipher: FieldCipher,
    data_keys: DataKeyStore,
    clock: Clock,
    index_key: bytes,
    pseudonym_key: bytes,
    email: str,
    password: str,
    password_hash: str | None = None,
) -> Account:
    """A new customer: account, data key, and the e-mail sealed into the profile."""
    account = accounts_service.create_account(
        session,
        index_key=index_key,
        data_keys=data_keys,
        clock=clock,
        role=Role.CUSTOMER,
        email=email,
        password=password,
        password_hash=password_hash,
    )
    email = accounts_service.validate_email(email)
    sealed = cipher.seal_named(account.id, {"email": email})["email"]
    session.add(
        ProfileField(
            account_id=account.id, name_index=sealed.name_index, sealed_name=sealed.sealed_name,
            sealed=sealed.sealed, updated_at=clock.now()
        )
    )
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=accounts_service.actor_for(pseudonym_key, account),
            action="account.created",
            subject=subject_pseudonym(pseudonym_key, account.id),
        ),
    )
    return account


def export_document(
    session: Session, *, cipher: FieldCipher, clock: Clock, pseudonym_key: bytes, account: Account
) -> dict[str, Any]:
    """Everything the vault holds about the customer, as one JSON-ready document."""
    subject = subject_pseudonym(pseudonym_key, account.id)
    profile = read_profile(session, cipher=cipher, account_id=account.id)
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=accounts_service.actor_for(pseudonym_key, account),
            action="profile.exported",
            subject=subject,
            resource="export",
        ),
    )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": utc_iso(clock.now()),
        "account": {
            "id": account.id,
            "created_at": utc_iso(account.created_at),
            "audit_pseudonym": subject,
        },
        "profile": {
            **profile.standard,
            "interests": profile.interests,
            "identities": profile.identities,
            "custom": profile.custom,
        },
        "access_log": [
            {
                "seq": entry.seq,
                "at": utc_iso(entry.recorded_at),
                "actor": entry.actor,
                "action": entry.action,
                "resource": entry.resource,
                "purpose": entry.purpose,
                "outcome": entry.outcome,
                "details": json.loads(entry.details),
            }
            for entry in audit_service.entries_about(session, subject, limit=100_000)
        ],
    }


def erase(
    session: Session,
    ctx: ConsentContext,
    *,
    data_keys: DataKeyStore,
    account: Account,
) -> int:
    """Crypto-shred the customer, then remove the account; returns key versions destroyed.

    The key store is written first and on its own: if anything after it fails, the customer's
    data is already unreadable, and running erasure again finishes the clean-up. Whatever
    residue of the key the key store's database keeps is sealed under an epoch key destroyed
    within `erasure_shred_seconds` (`DataKeyStore.shred`). Every company
    that held a grant gets a `customer.erased` event before the grants go with the account.
    """
    clock = ctx.clock
    subject = subject_pseudonym(ctx.pseudonym_key, account.id)
    destroyed = data_keys.destroy(account.id, now=clock.now())
    consent_service.customer_erased(session, ctx, account_id=account.id)
    session.exec(delete(ProfileField).where(col(ProfileField.account_id) == account.id))
    accounts_service.delete_account(session, account=account)
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=f"customer:{subject}",
            action="customer.erased",
            subject=subject,
            details={"data_key_versions_destroyed": destroyed},
        ),
    )
    return destroyed


@dataclass(frozen=True)
class CompanyReadRequest:
    """A company's read of one customer's fields, for one stated purpose."""

    company: str
    subject: str
    fields: list[str]
    purpose: str


@dataclass(frozen=True)
class FieldDecision:
    """One field's decision with the request and facts it was made from (for replay)."""

    request: DecisionRequest
    facts: Facts
    decision: Decision

    def record(self) -> dict[str, Any]:
        """Request, facts and decision as JSON for the audit log."""
        return {**decision_record(self.request, self.facts), **self.decision.as_record()}


def read_facts(grant: Grant | None, *, in_force: frozenset[str], fields: Iterable[str],
               now: datetime) -> dict[str, GrantFacts]:
    """What the grant says about each requested field's scope: the facts of a company read.

    A read looks at the grant alone (which scopes are in force, which purposes the customer
    consented to for each field), never at marketing preferences or the customer's clock, so
    nothing sealed is opened to decide it.
    """
    return {name: consent_service.grant_facts(grant, scope=read_scope(name), in_force=in_force,
                                              now=now) for name in fields}


def decide_company_read(
    *, policy: PolicySet, request: CompanyReadRequest, grant_facts: Mapping[str, GrantFacts],
    time_zone: str, now: datetime,
) -> dict[str, FieldDecision]:
    """The policy engine's decision for each requested field (pure: no database, no keys).

    `grant_facts` holds, per field, what the grant says about that field's scope: whether it
    is in force and which purposes the customer consented to for it (`read_facts`).
    """
    decided = {}
    for name in request.fields:
        field_request = DecisionRequest(
            company=request.company, subject=request.subject, action=Action.READ,
            resource=f"profile.{name}", purpose=request.purpose, time=now)
        facts = Facts(grant=grant_facts[name], time_zone=time_zone)
        decided[name] = FieldDecision(field_request, facts, policy.decide(field_request, facts))
    return decided


def open_for_company(
    session: Session | Connection, *, cipher: FieldCipher, account_id: str, fields: list[str]
) -> dict[str, Any]:
    """Open exactly the allowed fields; list fields come back as lists."""
    opened = read_fields(session, cipher=cipher, account_id=account_id, names=fields)
    return {name: json.loads(opened[name]) if name in ("interests", "identities")
            else opened.get(name) for name in fields}


@dataclass(frozen=True)
class CompanyRead:
    """What one company read decided and opened, and its audit entry (to be appended, and
    durable, before any of it is answered)."""

    event: audit_service.AuditEvent
    refused: dict[str, Decision]
    policy_version: str
    values: dict[str, Any]


def read_for_company(
    connection: Connection, *, cipher: FieldCipher, policy: PolicySet, pseudonym_key: bytes,
    company: OAuthClient, grant: Grant, in_force: frozenset[str], subject: str,
    fields: list[str], purpose: str, now: datetime,
) -> CompanyRead:
    """A company's read of one customer's fields under a live grant: every field decided by
    the policy, all opened only when all are allowed, and the audit entry that records it.

    The caller has checked the token behind `grant` (live, not revoked, its sender) and
    appends `event` before it answers; nothing here writes, so it runs on a read-only
    connection.
    """
    if not hmac.compare_digest(subject.encode(), grant.pairwise_subject.encode()):
        raise NotFound("This token gives no access to that subject.")
    if not purpose.strip():
        raise ValidationFailed("State the purpose of this read.", problems={"purpose": "required"})
    request = CompanyReadRequest(company=company.client_id, subject=subject, fields=fields,
                                 purpose=purpose)
    decisions = decide_company_read(
        policy=policy, request=request, now=now, time_zone="UTC",
        grant_facts=read_facts(grant, in_force=in_force, fields=fields, now=now))
    refused = {n: d.decision for n, d in decisions.items() if d.decision.outcome != "allow"}
    version = next(iter(decisions.values())).decision.policy_version
    event = audit_service.AuditEvent(
        actor=f"company:{company.client_id}", action="profile.read",
        subject=subject_pseudonym(pseudonym_key, grant.account_id),
        resource="profile", purpose=purpose, outcome="deny" if refused else "allow",
        details={
            "company_name": company.name, "fields": fields, "refused": sorted(refused),
            "rule_ids": sorted({r for d in decisions.values() for r in d.decision.rule_ids}),
            "reasons": sorted({r for d in refused.values() for r in d.reasons}),
            "policy_version": version,
            "decisions": {n: d.record() for n, d in decisions.items()},
        },
    )
    values = {} if refused else open_for_company(
        connection, cipher=cipher, account_id=grant.account_id, fields=fields)
    return CompanyRead(event=event, refused=refused, policy_version=version, values=values)
