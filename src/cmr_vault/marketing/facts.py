"""Facts for decisions about a customer's attention: pushes, campaigns, consent checks, offers.

The policy package is a pure leaf that decides on values (`policy/facts.py`); this module is the
one place that reads those values from the database for anything that lands in front of a
customer, in a single form (`attention_facts`: one customer, everything opened, as an audited
push needs) and two bulk forms for a chunk of customers (one query per kind of fact, one
key-store query for whatever is opened): `attention_facts_many`, everything opened, and
`decide_many`, which decides first with the sealed facts (topics, time zone) left sealed and
opens them only for the customers whose decision looks at them. It lives in marketing, which
owns most of what it reads (channel preferences, delivered messages); the grant's facts come
from consent (`grant_facts`), the time zone from the profile's sealed `time_zone` field
(vault), and offers from the intents table. Reads of profile fields look at the grant alone
(`vault.service.read_facts`).

Four copies used to gather these facts four ways; where they disagreed, the rule is now:

- Caps and the attention budget count everything that reached the customer in the last 30
  days: messages delivered, and offers and invitations that reached the inbox (delivered,
  accepted, declined, or deferred and since due). Pushes ignored offers, and offers ignored a
  deferred offer the customer could already see.
- The time zone is the customer's own wherever a decision looks at their clock. Campaigns
  used to open it only where quiet hours were set, by a rule of thumb; now the engine itself
  says when it needs it (`SealedFactNeeded`), so a policy that reads `local_time` elsewhere
  gets the right clock too.
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
from cmr_vault.db.membership import one_of
from cmr_vault.intents.models import Offer
from cmr_vault.marketing.models import ALL, ChannelPreference, Message
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    SEALED_ZONE,
    UNOPENED_TOPICS,
    ChannelPreferences,
    Counters,
    Decision,
    DecisionRequest,
    Facts,
    GrantFacts,
    SealedFactNeeded,
)
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
    """Preference rows repeat across customers: each shape is built once (rows with sealed
    topics share the shape only while their topics are unopened)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], ChannelPreferences] = {}

    def of(self, row: Any, topics: frozenset[str] = frozenset()) -> ChannelPreferences:
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
            topics is UNOPENED_TOPICS,
        )
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = _preferences(row, topics)
        return found


class _Chunk:
    """One chunk's rows, read with one query per kind of fact; sealed values opened on demand."""

    def __init__(
        self,
        session: Session,
        *,
        client_id: str,
        channel: str,
        customers: Sequence[Customer],
        now: datetime,
        shapes: PreferenceShapes,
    ) -> None:
        self.session, self.client_id, self.now, self.shapes = session, client_id, now, shapes
        ids = list({c.account_id for c in customers})
        dialect = session.get_bind().dialect.name
        self.rows: dict[tuple[str, str], Any] = {}
        for row in session.connection().execute(
            select(*_PREFERENCE_COLUMNS).where(
                one_of(col(ChannelPreference.account_id), ids, dialect=dialect),
                tuple_(ChannelPreference.client_id, ChannelPreference.channel).in_(
                    [(client_id, channel), (ALL, ALL)]
                ),
            )
        ):
            self.rows[(row.account_id, row.client_id)] = row
        self.sent = _reached(session, ids, now)

    def open(
        self, cipher: FieldCipher, customers: Iterable[Customer]
    ) -> dict[tuple[str, str], str | None]:
        """Topics and time zone of these customers, opened with one key-store query; None
        for a value that exists but does not open."""
        sealed: dict[tuple[str, str], bytes] = {}
        accounts = {c.account_id for c in customers}
        for account_id in accounts:
            for who in (self.client_id, ALL):
                row = self.rows.get((account_id, who))
                if row is not None and row.topics:
                    sealed[(account_id, topics_field(row.client_id, row.channel))] = (
                        base64.b64decode(row.topics)
                    )
        for account_id, blob in vault_service.sealed_field_many(
            self.session, cipher=cipher, account_ids=accounts, name=ZONE_FIELD
        ).items():
            sealed[(account_id, ZONE_FIELD)] = blob
        opened: dict[tuple[str, str], str | None] = dict.fromkeys(sealed)
        opened.update(cipher.open_many(sealed))
        return opened

    def facts(self, customer: Customer, opened: dict[tuple[str, str], str | None] | None) -> Facts:
        """The customer's facts; with `opened` None, sealed ones are left sealed."""
        account_id = customer.account_id
        unreadable = False
        prefs = []
        for who in (self.client_id, ALL):
            row = self.rows.get((account_id, who))
            if row is None:
                prefs.append(NO_PREFERENCES)
            elif not row.topics:
                prefs.append(self.shapes.of(row))
            elif opened is None:
                prefs.append(self.shapes.of(row, UNOPENED_TOPICS))
            else:
                topics = opened.get((account_id, topics_field(row.client_id, row.channel)))
                unreadable |= topics is None
                prefs.append(_preferences(row, frozenset(json.loads(topics or "[]"))))
        zone = SEALED_ZONE
        if opened is not None:
            zone = opened.get((account_id, ZONE_FIELD), "UTC") or ""
            unreadable |= not zone
        if unreadable:
            prefs, zone = [NO_PREFERENCES, NO_PREFERENCES], "UTC"
        return Facts(
            grant=customer.grant,
            preferences=prefs[0],
            global_preferences=prefs[1],
            counters=count_sent(self.sent.get(account_id, ()), self.client_id, self.now),
            time_zone=zone,
        )


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
    """Facts for each customer (in order) about one company's message on one channel, every
    sealed one opened (for a decision that is audited with its facts).

    One query each for preferences, deliveries, inbox offers and time zones, and one key-store
    query for everything sealed; call it with up to `CHUNK` customers at a time.
    """
    if not customers:
        return []
    chunk = _Chunk(
        session,
        client_id=client_id,
        channel=channel,
        customers=customers,
        now=now,
        shapes=shapes or PreferenceShapes(),
    )
    opened = chunk.open(cipher, customers)
    return [chunk.facts(customer, opened) for customer in customers]


def decide_many(
    session: Session,
    *,
    cipher: FieldCipher,
    policy: PolicySet,
    request: DecisionRequest,
    customers: Sequence[Customer],
    now: datetime,
    shapes: PreferenceShapes | None = None,
) -> list[Decision]:
    """The decision for each customer (in order), opening only what decisions look at.

    Each customer is decided first with topics and time zone still sealed; a decision that
    never looks at them (no grant, no opt-in, a cap, no quiet hours) is final, and only the
    rest are opened, with one key-store query, and decided again: the same answers as
    `attention_facts_many` would give, for a fraction of the key unwraps.
    """
    if not customers:
        return []
    chunk = _Chunk(
        session,
        client_id=request.company,
        channel=request.channel,
        customers=customers,
        now=now,
        shapes=shapes or PreferenceShapes(),
    )
    decide = policy.decide
    decisions: list[Decision | None] = []
    pending: list[int] = []
    for position, customer in enumerate(customers):
        try:
            decisions.append(decide(request, chunk.facts(customer, None)))
        except SealedFactNeeded:
            decisions.append(None)
            pending.append(position)
    if pending:
        opened = chunk.open(cipher, [customers[i] for i in pending])
        for position in pending:
            decisions[position] = decide(request, chunk.facts(customers[position], opened))
    return decisions  # type: ignore[return-value]  # every None was decided above


def _reached(
    session: Session, account_ids: list[str], now: datetime
) -> dict[str, list[tuple[str, datetime]]]:
    """(sender, when) of everything that reached each customer in the last 30 days."""
    since = now - _WINDOW
    dialect = session.get_bind().dialect.name
    sent: dict[str, list[tuple[str, datetime]]] = {}
    for account_id, sender, at in session.connection().execute(
        select(Message.account_id, Message.client_id, Message.delivered_at).where(
            one_of(col(Message.account_id), account_ids, dialect=dialect),
            col(Message.delivered_at) >= since,
        )
    ):
        sent.setdefault(account_id, []).append((sender, at))
    # By customer alone, state and time checked here: with them in the query, SQLite took the
    # status index and walked every delivered offer of every customer for each chunk.
    for account_id, sender, at, status in session.connection().execute(
        select(Offer.account_id, Offer.client_id, Offer.not_before, Offer.status).where(
            one_of(col(Offer.account_id), account_ids, dialect=dialect))
    ):
        if status in INBOX_STATES and since <= at <= now:
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
