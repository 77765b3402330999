"""What the customer's own pages show, gathered across domains and put into their words.

Activity, receipts and connections each read several domains (the log, consent, the profile,
the company register); gathering it here keeps the handlers to parsing and shaping, and puts
every id the customer should never see (client ids, field hashes, DPV terms) behind a name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session

from cmr_vault.audit import transparency
from cmr_vault.audit.models import AuditCheckpoint
from cmr_vault.auditor import activity
from cmr_vault.consent import receipts
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import ConsentReceipt, ConsentRecord
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.errors import NotFound
from cmr_vault.i18n import gettext
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import parse_scope
from cmr_vault.vault import service as vault_service

if TYPE_CHECKING:
    from cmr_vault.runtime import Runtime

#: Connections in these states are over: they move to the page's history.
ENDED = frozenset({"revoked", "relinquished", "compromised"})


def customer_zone(session: Session, *, cipher: FieldCipher, account_id: str) -> ZoneInfo:
    """The customer's own time zone from their profile; UTC until they set one."""
    name = vault_service.read_fields(session, cipher=cipher, account_id=account_id,
                                     names=["time_zone"]).get("time_zone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _company_names(session: Session, client_ids: set[str]) -> dict[str, str]:
    names = {}
    for client_id in client_ids - {"", "*"}:
        try:
            names[client_id] = oauth_service.get_client(session, client_id).name
        except NotFound:
            continue  # a company since removed: the sentence says so
    return names


def _mentioned_companies(details: dict[str, Any], *parts: str) -> set[str]:
    found = {str(details.get("company") or "")}
    found |= {p.removeprefix("company:") for p in parts if p.startswith("company:")}
    return found


@dataclass(frozen=True)
class ActivityPage:
    """The customer's log entries in their words, each with its proof."""

    lines: list[tuple[activity.ActivityLine, bool | None]]
    checkpoint: AuditCheckpoint | None
    all_included: bool
    zone: ZoneInfo


def activity_of(session: Session, runtime: Runtime, *, account_id: str) -> ActivityPage:
    """Every entry about the customer, proven against the latest signed head and described
    in a sentence: company names, their own custom field names, their time zone."""
    keyring = runtime.keyring
    history = transparency.proven_history(
        session, tree=runtime.audit_tree, seed=keyring.signing_key, origin=runtime.log_origin,
        clock=runtime.clock, subject=subject_pseudonym(keyring.pseudonym_key, account_id))
    mentioned: set[str] = set()
    for entry in history.entries:
        mentioned |= _mentioned_companies(json.loads(entry.details or "{}"), entry.actor,
                                          entry.resource)
    zone = customer_zone(session, cipher=runtime.cipher, account_id=account_id)
    reading = activity.Reading(
        company_names=_company_names(session, mentioned),
        custom_names=vault_service.logged_custom_names(
            session, cipher=runtime.cipher, pseudonym_key=keyring.pseudonym_key,
            account_id=account_id),
        zone=zone)
    lines = []
    for entry in history.entries:
        check = history.checks.get(entry.seq)
        lines.append((activity.describe(entry, reading), check.included if check else None))
    return ActivityPage(lines, history.checkpoint, history.all_included, zone)


# --- receipts -------------------------------------------------------------------------------


_HOW = {
    "customer": "on your vault's pages",
    "company": "by the company, through the vault",
    "system": "by the vault itself",
}


@dataclass(frozen=True)
class ReceiptRecord:
    """One consent receipt as a person's record: what, who, when, what for, until when."""

    id: str
    at: datetime
    sentence: str
    company: str
    homepage: str
    privacy_policy_url: str
    notice_version: int | None
    uses: list[tuple[str, list[str]]]
    until: datetime | None
    how: str


def _receipt_sentence(claims: dict[str, Any], company: str) -> str:
    change = str(claims.get("event", {}).get("type", ""))
    channel = claims.get("channel")
    if channel:
        values = {"company": company, "channel": activity.channel_words(str(channel))}
        sentences = {
            "given": gettext("You said yes to messages from %(company)s by %(channel)s."),
            "renewed": gettext("You renewed your yes to %(company)s's messages by "
                               "%(channel)s."),
            "withdrawn": gettext("You said no to messages from %(company)s by %(channel)s."),
            "expired": gettext("Your yes to %(company)s's messages by %(channel)s ran out."),
        }
        return sentences.get(change, gettext("Your marketing settings changed.")) % values
    scopes = [category for service in claims.get("services", [])
              for purpose in service.get("purposes", [])
              for category in purpose.get("piiCategory", [])]
    return activity.grant_change_sentence(change, company, {
        "scopes": sorted(set(scopes)), "removed": claims.get("withdrawnCategories") or []})


def _category_words(category: str) -> str:
    if category.startswith("opt-in."):
        return activity.channel_words(category.removeprefix("opt-in."))
    try:
        return activity.scope_words(parse_scope(category))
    except ValueError:
        return category


def receipt_record(receipt: ConsentReceipt, zone: ZoneInfo) -> ReceiptRecord:
    """A stored receipt read as a person's record (from its own signed claims)."""
    claims = receipts.claims_in(receipt)
    controller = (claims.get("piiControllers") or [{}])[0]
    company = str(controller.get("piiController", ""))
    by_category: dict[str, list[str]] = {}
    for service in claims.get("services", []):
        for purpose in service.get("purposes", []):
            for category in purpose.get("piiCategory", []):
                if purpose.get("purpose") != "unspecified":
                    by_category.setdefault(category, []).append(str(purpose["purpose"]))
                else:
                    by_category.setdefault(category, [])
    expires = claims.get("expiresAt")
    notice = claims.get("notice") or {}
    return ReceiptRecord(
        id=receipt.id, at=receipt.issued_at.astimezone(zone),
        sentence=_receipt_sentence(claims, company), company=company,
        homepage=str(controller.get("piiControllerUrl", "")),
        privacy_policy_url=str(claims.get("policyUrl", "")),
        notice_version=notice.get("version"),
        uses=[(_category_words(c), sorted(p)) for c, p in sorted(by_category.items())],
        until=datetime.fromisoformat(expires).astimezone(zone) if expires else None,
        how=gettext(_HOW.get(str(claims.get("event", {}).get("by", "")),
                             "by the vault itself")))


def receipts_of(session: Session, *, cipher: FieldCipher, account_id: str
                ) -> tuple[list[ReceiptRecord], ZoneInfo]:
    """Every receipt of the customer, newest first, as records in their time zone."""
    zone = customer_zone(session, cipher=cipher, account_id=account_id)
    return [receipt_record(r, zone) for r in receipts.receipts_of(session, account_id)], zone


def receipt_of(session: Session, *, cipher: FieldCipher, account_id: str,
               receipt_id: str) -> ReceiptRecord:
    """One of the customer's receipts as a record; another person's is not found."""
    receipt = session.get(ConsentReceipt, receipt_id)
    if receipt is None or receipt.account_id != account_id:
        raise NotFound("You have no such receipt.")
    return receipt_record(receipt, customer_zone(session, cipher=cipher, account_id=account_id))


# --- connections ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    """One permission of a connection, in words, with why the company asked for it."""

    scope: str
    words: str
    purposes: list[str]


@dataclass(frozen=True)
class ConnectionCard:
    """A connection as its card on the Connections page."""

    connection: consent_service.Connection
    permissions: list[Permission]
    last_access: datetime | None
    history: list[tuple[datetime, str]]
    since: datetime
    until: datetime | None

    @property
    def company(self) -> OAuthClient:
        """The company at the other end."""
        return self.connection.company


def _history_line(record: ConsentRecord, company: str, zone: ZoneInfo) -> tuple[datetime, str]:
    return record.at.astimezone(zone), activity.grant_change_sentence(
        record.change, company, {"scopes": json.loads(record.scopes),
                                 "removed": json.loads(record.removed)})


def connection_cards(session: Session, *, cipher: FieldCipher, pseudonym_key: bytes,
                     account_id: str, now: datetime
                     ) -> tuple[list[ConnectionCard], list[ConnectionCard], ZoneInfo]:
    """The customer's connections as cards: those in force (or renewable), and those that
    ended (revoked, given up, stopped), for the history below them."""
    zone = customer_zone(session, cipher=cipher, account_id=account_id)
    connections = consent_service.connections(session, account_id=account_id, now=now)
    last = activity.last_access(session, subject=subject_pseudonym(pseudonym_key, account_id),
                                client_ids=[c.company.client_id for c in connections])
    current, ended = [], []
    for c in connections:
        card = ConnectionCard(
            connection=c,
            permissions=[Permission(s.name, activity.scope_words(s),
                                    c.purposes.get(s.name, [])) for s in c.scopes],
            last_access=last[c.company.client_id].astimezone(zone)
            if c.company.client_id in last else None,
            history=[_history_line(r, c.company.name, zone) for r in c.history],
            since=c.grant.created_at.astimezone(zone),
            until=c.grant.expires_at.astimezone(zone) if c.grant.expires_at else None)
        (ended if c.state in ENDED else current).append(card)
    return current, ended, zone


def connection_card(session: Session, *, cipher: FieldCipher, pseudonym_key: bytes,
                    account_id: str, grant_id: str, now: datetime) -> ConnectionCard:
    """One connection of the customer's, for the page that confirms a withdrawal."""
    current, _, _ = connection_cards(session, cipher=cipher, pseudonym_key=pseudonym_key,
                                     account_id=account_id, now=now)
    for card in current:
        if card.connection.grant.id == grant_id and card.connection.state == "active":
            return card
    raise NotFound("You have no such connection in force.")


def added_permissions(added: dict[str, list[str]]) -> list[Permission]:
    """What a newer privacy notice would add, in words (for the notices page)."""
    permissions = []
    for scope, purposes in sorted(added.items()):
        try:
            permissions.append(Permission(scope, activity.scope_words(parse_scope(scope)),
                                          purposes))
        except ValueError:
            continue  # a scope the vault no longer knows cannot be agreed to
    return permissions
