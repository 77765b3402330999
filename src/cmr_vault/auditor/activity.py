"""One reading of the audit log for the auditor's company report and the company's own figures.

Both walk a company's entries here and count pushes with `push_count`, so the two can never
disagree on what a push is: the entry that decided it (`push.decided`). A consent check is
counted as a check, a delivery as that push being sent; the steps in between count nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_
from sqlmodel import Session, col, select

from cmr_vault.audit.actions import PushAction
from cmr_vault.audit.models import AuditEntry
from cmr_vault.i18n import current_language, gettext, lazy_gettext
from cmr_vault.marketing.models import ALL as ALL_CHANNELS
from cmr_vault.oauth.scopes import PROGRAMME_KINDS, Scope, parse_scope
from cmr_vault.vault.fields import CUSTOM_PREFIX, STANDARD_BY_NAME

BATCH = 5000
UTC_ZONE = ZoneInfo("UTC")


class PushCount(StrEnum):
    """What a push-related entry adds to the figures."""

    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    REFUSED = "refused"
    SENT = "sent"
    CHECKED = "consent checks"


def push_count(action: str, outcome: str) -> PushCount | None:
    """The one figure a push-related entry counts towards, or None for the steps in between."""
    if action == PushAction.DECIDED:
        return {"allow": PushCount.ACCEPTED, "defer": PushCount.DEFERRED}.get(
            outcome, PushCount.REFUSED)
    if action == PushAction.DELIVERED:
        return PushCount.SENT
    if action == PushAction.CHECKED:
        return PushCount.CHECKED
    return None


def company_clause(company: str) -> ColumnElement[bool]:
    """Entries by the company, about it, or naming it in their details."""
    return or_(
        col(AuditEntry.actor) == f"company:{company}",
        col(AuditEntry.resource) == f"company:{company}",
        col(AuditEntry.details).contains(json.dumps(company)),
    )


def company_entries(session: Session, company: str, *, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[AuditEntry]:
    """Every entry concerning `company` in the period, newest first, read in batches."""
    query = select(AuditEntry).where(company_clause(company))
    if since:
        query = query.where(col(AuditEntry.recorded_at) >= since)
    if until:
        query = query.where(col(AuditEntry.recorded_at) < until)
    before = None
    while True:
        page = query if before is None else query.where(col(AuditEntry.seq) < before)
        batch = session.exec(page.order_by(col(AuditEntry.seq).desc()).limit(BATCH)).all()
        yield from batch
        if len(batch) < BATCH:
            return
        before = batch[-1].seq


def last_access(session: Session, *, subject: str, client_ids: Sequence[str]
                ) -> dict[str, datetime]:
    """When each company last did anything about this customer (a read, a message, a token),
    for "last used" on the Connections page. One grouped query over the log."""
    if not client_ids:
        return {}
    rows = session.exec(
        select(AuditEntry.actor, func.max(AuditEntry.recorded_at))
        .where(col(AuditEntry.subject) == subject,
               col(AuditEntry.actor).in_([f"company:{c}" for c in client_ids]))
        .group_by(col(AuditEntry.actor))).all()
    return {actor.removeprefix("company:"): at for actor, at in rows}


# --- the customer's own reading: each entry as one plain sentence ------------------------------


@dataclass(frozen=True)
class Reading:
    """What a customer's activity page needs to turn an entry into words: company names for
    client ids, their own names for the keyed hashes the log keeps of custom field names, and
    their time zone. Built for the customer alone: the names are opened with their key."""

    company_names: Mapping[str, str]
    custom_names: Mapping[str, str]
    zone: ZoneInfo = UTC_ZONE


@dataclass(frozen=True)
class ActivityLine:
    """One entry as its customer reads it."""

    at: datetime
    sentence: str
    refused: bool


_FIELDS = {
    "interests": lazy_gettext("interests"),
    "identities": lazy_gettext("linked identities"),
}
_CHANNELS = {
    "email": lazy_gettext("e-mail"),
    "sms": lazy_gettext("text message"),
    "inbox": lazy_gettext("your vault inbox"),
    "webhook": lazy_gettext("your own app"),
    ALL_CHANNELS: lazy_gettext("every channel"),
}
_PROGRAMMES = {
    "product-tests": lazy_gettext("product tests"),
    "feedback": lazy_gettext("feedback rounds"),
    "community": lazy_gettext("its community"),
}
_REFUSED = frozenset({"deny", "denied", "refused", "failed"})


def mid_sentence(label: str) -> str:
    """A label inside a sentence: English lower-cases it ("your given name"); German keeps
    its nouns capitalised ("Ihr Vorname")."""
    return label.lower() if current_language() == "en" else label


def field_words(logged: str, reading: Reading) -> str:
    """A logged field name in the customer's words: a standard field by its label, a custom
    field by the name the customer gave it (the log holds only a keyed hash of it)."""
    if logged.startswith("custom:") or logged.startswith(CUSTOM_PREFIX):
        name = reading.custom_names.get(logged) or (
            logged.removeprefix(CUSTOM_PREFIX) if logged.startswith(CUSTOM_PREFIX) else None)
        return name if name else gettext("a custom field you have since removed")
    spec = STANDARD_BY_NAME.get(logged)
    if spec is not None:
        return mid_sentence(gettext(spec.label))
    return str(_FIELDS.get(logged, logged.replace("_", " ")))


def word_list(words: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`, in the current language."""
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return gettext("%(items)s and %(last)s") % {"items": ", ".join(words[:-1]),
                                                 "last": words[-1]}


def _company(entry: AuditEntry, details: Mapping[str, Any], reading: Reading) -> str:
    client_id = details.get("company") or next(
        (part.removeprefix("company:") for part in (entry.actor, entry.resource)
         if part.startswith("company:")), "")
    if client_id == ALL_CHANNELS:
        return gettext("all companies")
    return (details.get("company_name") or reading.company_names.get(client_id)
            or gettext("a company that is no longer registered"))


def channel_words(channel: str) -> str:
    """A marketing channel as it fits "by …" in a sentence ("by e-mail")."""
    return str(_CHANNELS.get(channel, channel))


def _channel(details: Mapping[str, Any]) -> str:
    return channel_words(str(details.get("channel") or ""))


def scope_words(scope: Scope) -> str:
    """What a permission lets the company do, in the customer's language ("read your city")."""
    if scope.kind == "read":
        spec = STANDARD_BY_NAME.get(scope.target)
        field = (mid_sentence(gettext(spec.label)) if spec
                 else str(_FIELDS.get(scope.target, scope.target)))
        return gettext("read your %(field)s") % {"field": field}
    if scope.kind == "marketing":
        return gettext("send you messages by %(channel)s") % {
            "channel": channel_words(scope.target)}
    if scope.kind == "intent":
        return gettext("see what you look for about “%(topic)s” and answer with offers") % {
            "topic": scope.target}
    return gettext("invite you to take part in %(programme)s") % {
        "programme": _PROGRAMMES.get(scope.target, PROGRAMME_KINDS.get(scope.target, ""))}


def _scopes(names: Sequence[str]) -> str:
    words = []
    for name in names:
        try:
            words.append(scope_words(parse_scope(name)))
        except ValueError:
            continue  # a scope the vault no longer knows: nothing a person could act on
    return word_list(words)


def grant_change_sentence(change: str, company: str, details: Mapping[str, Any]) -> str:
    """A change to a connection (`scopes` it now has, `removed` ones) as one sentence."""
    values = {"company": company, "scopes": _scopes(details.get("scopes") or []),
              "removed": _scopes(details.get("removed") or [])}
    sentences = {
        "given": gettext("You gave %(company)s access: %(scopes)s."),
        "narrowed": gettext("You withdrew a permission from %(company)s: %(removed)s."),
        "widened": gettext("You agreed to %(company)s's new privacy notice."),
        "renewed": gettext("You renewed %(company)s's access for another term."),
        "revoked": gettext("You revoked all of %(company)s's access."),
        "relinquished": gettext("%(company)s gave up its access to your vault."),
        "compromised": gettext("The vault stopped %(company)s's access because one of its "
                               "keys was used twice."),
        "expired": gettext("%(company)s's access ran out."),
    }
    return sentences.get(change, gettext("Your connection with %(company)s changed.")) % values


def _push_sentence(action: str, outcome: str, company: str, channel: str) -> str:
    values = {"company": company, "channel": channel}
    if action == PushAction.CHECKED:
        return gettext("%(company)s asked whether it may send you a message by %(channel)s.") \
            % values
    if action == PushAction.DECIDED:
        if outcome == "allow":
            return gettext("%(company)s sent you a message by %(channel)s; the vault accepted "
                           "it.") % values
        if outcome == "defer":
            return gettext("%(company)s sent you a message by %(channel)s; the vault holds it "
                           "back until your settings allow it.") % values
        return gettext("%(company)s wanted to send you a message by %(channel)s; the vault "
                       "refused it.") % values
    if action == PushAction.DELIVERED:
        return gettext("A message from %(company)s reached you by %(channel)s.") % values
    if action == PushAction.STOPPED:
        return gettext("The vault stopped a message from %(company)s: your permission had "
                       "changed.") % values
    if action == PushAction.DEFERRED:
        return gettext("The vault held a message from %(company)s back until your settings "
                       "allow it.") % values
    if action == PushAction.FAILED:
        return gettext("A message from %(company)s could not be delivered.") % values
    return gettext("The vault will try again to deliver a message from %(company)s.") % values


def _preferences_sentence(action: str, company: str, channel: str,
                          details: Mapping[str, Any]) -> str:
    values = {"company": company, "channel": channel}
    if action == "preferences.changed":
        if details.get("company") == ALL_CHANNELS:
            return gettext("You changed your limits for all marketing.")
        if details.get("opted_in"):
            return gettext("You changed what %(company)s may send you by %(channel)s.") % values
        return gettext("You said no to messages from %(company)s by %(channel)s.") % values
    sentences = {
        "preferences.renewed": gettext("You renewed your yes to %(company)s's messages by "
                                       "%(channel)s."),
        "preferences.expired": gettext("Your yes to %(company)s's messages by %(channel)s ran "
                                       "out."),
        "preferences.confirmed": gettext("You confirmed e-mail from %(company)s."),
        "preferences.unsubscribed": gettext("You unsubscribed from %(company)s's messages by "
                                            "%(channel)s."),
    }
    return sentences.get(action, gettext("Your marketing settings changed.")) % values


def _customer_sentence(action: str, entry: AuditEntry, company: str, fields: str) -> str | None:
    values = {"company": company, "fields": fields}
    sentences = {
        "account.created": gettext("You created your vault."),
        "account.sign-in": gettext("You signed in.") if entry.outcome != "refused"
        else gettext("Someone tried to sign in with a wrong password."),
        "account.password-changed": gettext("You changed your password."),
        "profile.updated": gettext("You changed your %(fields)s."),
        "profile.exported": gettext("You downloaded everything your vault holds."),
        "push-endpoint.changed": gettext("You changed the address of your own app."),
        "consent.denied": gettext("You said no to %(company)s's request for access."),
        "intent.published": gettext("You published something you are looking for."),
        "intent.withdrawn": gettext("You withdrew something you were looking for."),
        "intent.seen": gettext("%(company)s saw what you are looking for."),
        "offer.sent": gettext("%(company)s sent you an offer."),
        "invitation.sent": gettext("%(company)s invited you to take part."),
        "offer.accepted": gettext("You accepted an offer from %(company)s."),
        "offer.declined": gettext("You declined an offer from %(company)s."),
        "company.blocked": gettext("You blocked %(company)s: it cannot send you offers any "
                                   "more."),
        "value.fulfilled": gettext("%(company)s gave you what it promised for your data."),
        "grant.reminded": gettext("The vault reminded you that %(company)s's access runs out "
                                  "soon."),
        "opt-in.reminded": gettext("The vault reminded you that your yes to %(company)s's "
                                   "messages runs out soon."),
        "token.issued": gettext("%(company)s connected to your vault."),
        "token.revoked": gettext("%(company)s's key to your vault was cancelled."),
        "token.reuse_detected": gettext("%(company)s used an old key twice; the vault stopped "
                                        "it."),
        "code.replayed": gettext("Someone reused %(company)s's sign-in code; the vault stopped "
                                 "it."),
    }
    sentence = sentences.get(action)
    return sentence % values if sentence is not None else None


def describe(entry: AuditEntry, reading: Reading) -> ActivityLine:
    """One log entry about the customer as a sentence in their language, at their local time.

    Nothing here shows an event code, a client id or a hash: an entry the vault has no words
    for yet says who acted, and that the vault recorded it.
    """
    details: dict[str, Any] = json.loads(entry.details or "{}")
    company = _company(entry, details, reading)
    action, outcome = entry.action, entry.outcome
    values = {"company": company, "purpose": entry.purpose,
              "fields": word_list([field_words(f, reading) for f in details.get("fields") or []])}
    if action == "profile.read":
        sentence = (gettext("%(company)s read your %(fields)s, for “%(purpose)s”.")
                    if outcome == "allow" else
                    gettext("%(company)s asked to read your %(fields)s, for “%(purpose)s”; the "
                            "vault refused.")) % values
    elif action.startswith("grant."):
        sentence = grant_change_sentence(action.removeprefix("grant."), company, details)
    elif action.startswith("push."):
        sentence = _push_sentence(action, outcome, company, _channel(details))
    elif action.startswith("preferences."):
        sentence = _preferences_sentence(action, company, _channel(details), details)
    else:
        sentence = _customer_sentence(action, entry, company, values["fields"]) or (
            gettext("%(company)s did something the vault recorded.") % values
            if entry.actor.startswith("company:")
            else gettext("The vault recorded a change to your vault."))
    return ActivityLine(at=entry.recorded_at.astimezone(reading.zone), sentence=sentence,
                        refused=outcome in _REFUSED)
