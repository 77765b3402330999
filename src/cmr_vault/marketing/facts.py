"""Facts for decisions about a customer's attention: pushes, campaigns, consent checks, offers.

The policy package is a pure leaf that decides on values (`policy/facts.py`); this module is the
one place that reads those values from the database for anything that lands in front of a
customer, in a single form (`attention_facts`: one customer) and a bulk form
(`attention_facts_many`: a chunk of customers, one query per kind of fact, each customer's data
key unwrapped once). It lives in marketing, which owns most of what it reads (channel
preferences, delivered messages); the grant's facts come from consent (`grant_facts`), the
time zone from the profile's sealed `time_zone` field (vault), and offers from the intents
table. Reads of profile fields look at the grant alone (`vault.service.read_facts`).

Four copies used to gather these facts four ways; where they disagreed, the rule is now:

- Caps and the attention budget count everything that reached the customer in the last 30
  days: messages delivered, and offers and invitations that reached the inbox (delivered,
  accepted, declined, or deferred and since due). Pushes ignored offers, and offers ignored a
  deferred offer the customer could already see.
- The time zone is opened only for a customer who set quiet hours (for this company's channel
  or for all companies): the shipped rules look at the customer's clock only inside quiet
  hours. Single pushes and offers opened it for everyone, campaigns only with quiet hours.
- Something sealed that does not open (a key erased while a campaign runs) leaves that customer
  without preferences, so the decision refuses: never a guess that could allow.

Nothing here is cached between calls: revocation, expiry, an opt-out and erasure count on the
very next decision.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.intents.models import Offer
from cmr_vault.marketing.models import ALL, ChannelPreference, Message
from cmr_vault.policy.facts import ChannelPreferences, Counters, Facts, GrantFacts
from cmr_vault.vault import service as vault_service

#: Offers in these states reached the customer's inbox (a deferred one once it is due).
INBOX_STATES = ("delivered", "deferred", "accepted", "declined")
#: Customers per bulk query: SQLite (3.32 and later) binds up to 32,766 parameters.
CHUNK = 10_000
ZONE_FIELD = "time_zone"
NO_PREFERENCES = ChannelPreferences()
NO_COUNTS = Counters()
_WINDOW = timedelta(days=30)


def topics_field(client_id: str, channel: str) -> str:
    """The sealed field name of a preference row's topics (bound into the seal's AAD)."""
    return f"topics:{client_id}:{channel}"


def clock_time(value: str | None) -> time | None:
    """A stored "HH:MM" quiet-hours bound as a time."""
    return time.fromisoformat(value) if value else None


def count_sent(sent: Iterable[tuple[str, datetime]], client_id: str, now: datetime) -> Counters:
    """Counters from (sender, reached_at) pairs of the last 30 days."""
    sent = list(sent)
    if not sent:
        return NO_COUNTS
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    mine = [at for sender, at in sent if sender == client_id]
    return Counters(
        company_day=sum(at >= day for at in mine),
        company_week=sum(at >= week for at in mine),
        company_month=len(mine),
        all_day=sum(at >= day for _, at in sent),
        all_week=sum(at >= week for _, at in sent),
        all_month=len(sent),
    )


@dataclass(frozen=True, slots=True)
class Customer:
    """Who a decision is about: the account, and what its grant says for the scope in use."""

    account_id: str
    grant: GrantFacts


_PREFERENCE_COLUMNS = (
    ChannelPreference.account_id,
    ChannelPreference.client_id,
    ChannelPreference.channel,
    ChannelPreference.opted_in,
    ChannelPreference.confirmed_at,
    ChannelPreference.topics,
    ChannelPreference.cap_day,
    ChannelPreference.cap_week,
    ChannelPreference.cap_month,
    ChannelPreference.quiet_start,
    ChannelPreference.quiet_end,
    ChannelPreference.paused_until,
    ChannelPreference.expires_at,
)


def _preferences(row: Any, topics: frozenset[str]) -> ChannelPreferences:
    return ChannelPreferences(
        opted_in=row.opted_in,
        confirmed_at=row.confirmed_at,
        topics=topics,
        cap_day=row.cap_day,
        cap_week=row.cap_week,
        cap_month=row.cap_month,
        quiet_start=clock_time(row.quiet_start),
        quiet_end=clock_time(row.quiet_end),
        paused_until=row.paused_until,
        expires_at=row.expires_at,
    )


class PreferenceShapes:
    """Preference rows without topics repeat across customers: each shape is built once."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], ChannelPreferences] = {}

    def of(self, row: Any) -> ChannelPreferences:
        key = (
            row.opted_in,
            row.confirmed_at,
            row.cap_day,
            row.cap_week,
            row.cap_month,
            row.quiet_start,
            row.quiet_end,
            row.paused_until,
            row.expires_at,
        )
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = _preferences(row, frozenset())
        return found


def attention_facts_many(
    session: Session,
    *,
    cipher: FieldCipher,
    client_id: str,
    channel: str,
    customers: Sequence[Customer],
    now: datetime,
    shapes: PreferenceShapes | None = None,
) -> list[Facts]:
    """Facts for each customer (in order) about one company's message on one channel.

    One query each for preferences, deliveries, inbox offers and time zones, and one key-store
    query for whatever must be opened; call it with up to `CHUNK` customers at a time.
    `shapes` may be shared across the chunks of one campaign.
    """
    if not customers:
        return []
    shapes = shapes or PreferenceShapes()
    ids = list({c.account_id for c in customers})
    pairs = [(client_id, channel), (ALL, ALL)]
    rows: dict[tuple[str, str], Any] = {}
    sealed: dict[tuple[str, str], bytes] = {}
    zones_wanted: set[str] = set()
    for row in session.execute(
        select(*_PREFERENCE_COLUMNS).where(
            col(ChannelPreference.account_id).in_(ids),
            tuple_(ChannelPreference.client_id, ChannelPreference.channel).in_(pairs),
        )
    ):
        rows[(row.account_id, row.client_id)] = row
        if row.topics:
            sealed[(row.account_id, topics_field(row.client_id, row.channel))] = base64.b64decode(
                row.topics
            )
        if row.quiet_start and row.quiet_end:
            zones_wanted.add(row.account_id)
    for account_id, blob in vault_service.sealed_field_many(
        session, cipher=cipher, account_ids=zones_wanted, name=ZONE_FIELD
    ).items():
        sealed[(account_id, ZONE_FIELD)] = blob
    opened = cipher.open_many(sealed)
    sent = _reached(session, ids, now)
    facts = []
    for customer in customers:
        account_id = customer.account_id
        own = rows.get((account_id, client_id))
        every = rows.get((account_id, ALL))
        unreadable = False
        prefs = []
        for row in (own, every):
            if row is None:
                prefs.append(NO_PREFERENCES)
            elif not row.topics:
                prefs.append(shapes.of(row))
            else:
                topics = opened.get((account_id, topics_field(row.client_id, row.channel)))
                unreadable |= topics is None
                prefs.append(_preferences(row, frozenset(json.loads(topics or "[]"))))
        zone = "UTC"
        if account_id in zones_wanted and (account_id, ZONE_FIELD) in sealed:
            zone = opened.get((account_id, ZONE_FIELD), "")
            unreadable |= not zone
        if unreadable:
            prefs = [NO_PREFERENCES, NO_PREFERENCES]
        facts.append(
            Facts(
                grant=customer.grant,
                preferences=prefs[0],
                global_preferences=prefs[1],
                counters=count_sent(sent.get(account_id, ()), client_id, now),
                time_zone=zone,
            )
        )
    return facts


def _reached(
    session: Session, account_ids: list[str], now: datetime
) -> dict[str, list[tuple[str, datetime]]]:
    """(sender, when) of everything that reached each customer in the last 30 days."""
    since = now - _WINDOW
    sent: dict[str, list[tuple[str, datetime]]] = {}
    for account_id, sender, at in session.execute(
        select(Message.account_id, Message.client_id, Message.delivered_at).where(
            col(Message.account_id).in_(account_ids), col(Message.delivered_at) >= since
        )
    ):
        sent.setdefault(account_id, []).append((sender, at))
    for account_id, sender, at in session.execute(
        select(Offer.account_id, Offer.client_id, Offer.not_before).where(
            col(Offer.account_id).in_(account_ids),
            col(Offer.status).in_(INBOX_STATES),
            col(Offer.not_before) >= since,
            col(Offer.not_before) <= now,
        )
    ):
        sent.setdefault(account_id, []).append((sender, at))
    return sent


def attention_facts(
    session: Session,
    *,
    cipher: FieldCipher,
    client_id: str,
    channel: str,
    account_id: str,
    grant: GrantFacts,
    now: datetime,
) -> Facts:
    """Facts about one company's message to one customer on one channel (the bulk form for
    one), read fresh from the database."""
    return attention_facts_many(
        session,
        cipher=cipher,
        client_id=client_id,
        channel=channel,
        customers=[Customer(account_id, grant)],
        now=now,
    )[0]
