"""Appending to and verifying the hash-chained audit log.

Every entry's hash covers the previous entry's hash and the entry's canonical bytes, so changing,
removing, inserting or reordering any entry breaks the chain at that point. Appends lock the one
head row, which makes the log a single sequence on SQLite and PostgreSQL alike. Entries carry
pseudonyms and names of things only; personal data never enters the log, so erasure and an
append-only log live together.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, Protocol

from sqlalchemy import Connection, insert, text, update
from sqlmodel import Session, col, select

from cmr_vault.audit.merkle import leaf_hash
from cmr_vault.audit.models import AuditEntry, AuditHead
from cmr_vault.clock import Clock, utc_iso

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """What happened, as the caller describes it. `details` must hold no personal data."""

    actor: str
    action: str
    subject: str = ""
    resource: str = ""
    purpose: str = ""
    outcome: str = "ok"
    details: Mapping[str, Any] = field(default_factory=dict)


def _normalise(value: Any) -> Any:
    """NFC-normalise every string so one logical event has exactly one encoding (checklist P19)."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, Mapping):
        return {_normalise(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, NFC strings: the one serialisation that gets hashed."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class LoggedEntry(Protocol):
    """The fields of one entry, whether an ORM object, an appended entry or a plain row."""

    seq: int
    recorded_at: datetime
    actor: str
    action: str
    subject: str
    resource: str
    purpose: str
    outcome: str
    details: str
    prev_hash: str
    entry_hash: str
    leaf_hash: str


def leaf_bytes(entry: LoggedEntry) -> bytes:
    """The canonical bytes of an entry: what its hash and its Merkle leaf cover.

    Equal to `canonical_json` of the entry's fields (sorted keys, no spaces), assembled by hand
    because verification runs this for every entry of the log: the stored strings are already
    NFC and `details` is already canonical JSON (both fixed at append time), so a stored value
    that was changed, even to an equivalent spelling, changes these bytes.
    """
    return _canonical(entry.seq, utc_iso(entry.recorded_at), entry.actor, entry.action,
                      entry.subject, entry.resource, entry.purpose, entry.outcome,
                      entry.details)


def _canonical(seq: int, recorded_at: str, actor: str, action: str, subject: str,
               resource: str, purpose: str, outcome: str, details: str) -> bytes:
    dumps = encode_basestring  # what json.dumps(ensure_ascii=False) does for a str
    return (
        f'{{"action":{dumps(action)},"actor":{dumps(actor)},"details":{details},'
        f'"outcome":{dumps(outcome)},"purpose":{dumps(purpose)},'
        f'"recorded_at":{dumps(recorded_at)},"resource":{dumps(resource)},"seq":{int(seq)},'
        f'"subject":{dumps(subject)}}}'
    ).encode()


def chain_hash(prev_hash: str, entry: AuditEntry | AppendedEntry) -> str:
    """SHA-256 over the previous hash and this entry's canonical bytes."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + leaf_bytes(entry)).hexdigest()


def _locked_head(session: Session) -> AuditHead:
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, size=0, head_hash=GENESIS_HASH)
        session.add(head)
    return head


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    """An entry as appended: the columns of one audit_entry row, without ORM overhead."""

    seq: int
    recorded_at: datetime
    actor: str
    action: str
    subject: str
    resource: str
    purpose: str
    outcome: str
    details: str
    prev_hash: str
    entry_hash: str = ""
    leaf_hash: str = ""

    def row(self) -> dict[str, Any]:
        """The values to insert."""
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


def _entry(seq: int, prev_hash: str, at: datetime, at_iso: str, event: AuditEvent
           ) -> AppendedEntry:
    actor, action = _normalise(event.actor), _normalise(event.action)
    subject, resource = _normalise(event.subject), _normalise(event.resource)
    purpose, outcome = _normalise(event.purpose), _normalise(event.outcome)
    details = canonical_json(event.details)
    data = _canonical(seq, at_iso, actor, action, subject, resource, purpose, outcome, details)
    return AppendedEntry(
        seq, at, actor, action, subject, resource, purpose, outcome, details, prev_hash,
        entry_hash=hashlib.sha256(bytes.fromhex(prev_hash) + data).hexdigest(),
        leaf_hash=leaf_hash(data).hex(),
    )


def record(session: Session, *, clock: Clock, event: AuditEvent) -> AppendedEntry:
    """Append one event inside the caller's transaction; it is durable when that commits.

    Use this when the event must commit atomically with a change (a grant revoked and its
    audit entry); reads that change nothing go through the group-commit appender instead.
    """
    return record_many(session, clock=clock, events=[event])[0]


def record_many(
    session: Session, *, clock: Clock, events: Sequence[AuditEvent]
) -> list[AppendedEntry]:
    """Append a batch under one lock of the head: one chain, one transaction."""
    head = _locked_head(session)
    entries = _chained(head.size, head.head_hash, clock, events)
    # Core executemany: the ORM's per-object bookkeeping is most of an append's cost.
    session.connection().execute(insert(AuditEntry.__table__), [e.row() for e in entries])
    head.size += len(entries)
    head.head_hash = entries[-1].entry_hash
    session.add(head)
    session.flush()
    return entries


_HEAD = AuditHead.__table__  # type: ignore[attr-defined]


def append_entries(
    connection: Connection, *, clock: Clock, events: Sequence[AuditEvent]
) -> list[AppendedEntry]:
    """`record_many` on SQLAlchemy Core, for the group-commit appender's own transactions.

    Three statements whatever the batch's size (lock and read the head, insert the entries,
    advance the head): the appender's commit is what every concurrent read waits for.
    """
    head = connection.execute(
        select(_HEAD.c.size, _HEAD.c.head_hash).where(_HEAD.c.id == 1).with_for_update()
    ).first()
    size, prev = (int(head.size), str(head.head_hash)) if head else (0, GENESIS_HASH)
    entries = _chained(size, prev, clock, events)
    connection.execute(insert(AuditEntry.__table__), [e.row() for e in entries])
    values = {"size": size + len(entries), "head_hash": entries[-1].entry_hash}
    if head is None:
        connection.execute(insert(_HEAD).values(id=1, **values))
    else:
        connection.execute(update(_HEAD).where(_HEAD.c.id == 1).values(**values))
    return entries


def _chained(size: int, prev: str, clock: Clock, events: Sequence[AuditEvent]
             ) -> list[AppendedEntry]:
    now = clock.now()
    now_iso = utc_iso(now)
    entries = []
    for offset, event in enumerate(events, start=1):
        entry = _entry(size + offset, prev, now, now_iso, event)
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def iter_entries(session: Session, *, batch: int = 5000) -> Iterator[AuditEntry]:
    """Every entry in sequence order, fetched in batches to keep memory flat."""
    last = 0
    while True:
        rows = session.exec(
            select(AuditEntry)
            .where(AuditEntry.seq > last)
            .order_by(col(AuditEntry.seq))
            .limit(batch)
        ).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].seq


def iter_entry_rows(session: Session, *, batch: int = 20_000) -> Iterator[LoggedEntry]:
    """Every entry in sequence order as plain rows, in batches to keep memory flat.

    Verification and export read the whole log; building an ORM object per entry was most of
    their time.
    """
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    last = 0
    while True:
        rows = session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch)
        ).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].seq


#: One entry as verification reads it: (seq, recorded_at in `utc_iso` spelling, actor, action,
#: subject, resource, purpose, outcome, details, prev_hash, entry_hash), the order of `_canonical`.
CanonicalRow = tuple[int, str, str, str, str, str, str, str, str, str, str]

_ROW_COLUMNS = ("seq, recorded_at, actor, action, subject, resource, purpose, outcome, details, "
                "prev_hash, entry_hash")
#: SQLAlchemy's spelling of a UTC instant in SQLite: "2026-11-23 10:00:00.000000".
_SQLITE_MOMENT = len("2026-11-23 10:00:00.000000")


def stored_moment(value: datetime | str) -> str:
    """A stored or exported `recorded_at` in `utc_iso` spelling, without a datetime if it can.

    SQLite hands back the text SQLAlchemy wrote (always one layout, in UTC) and an export holds
    `utc_iso`'s own; anything else (PostgreSQL's datetimes, an edited value) goes through
    `utc_iso` as the ORM would, so an equal instant spelled another way still verifies.
    """
    if isinstance(value, str):
        if len(value) == _SQLITE_MOMENT and value[10] == " " and value[19] == ".":
            return f"{value[:10]}T{value[11:]}Z"
        if len(value) == _SQLITE_MOMENT + 1 and value[10] == "T" and value[-1] == "Z":
            return value  # already `utc_iso`'s spelling (an export file)
        value = datetime.fromisoformat(value)
    return utc_iso(value)


def iter_canonical_rows(session: Session, *, batch: int = 50_000) -> Iterator[CanonicalRow]:
    """Every entry in sequence order as the bare tuples verification hashes.

    Plain SQL through the driver, keyset-paged: no ORM objects and no datetime per row (the
    ORM and type conversion were half of `audit verify`'s time).
    """
    query = text(f"SELECT {_ROW_COLUMNS} FROM audit_entry WHERE seq > :last "  # noqa: S608
                 "ORDER BY seq LIMIT :batch")
    last = 0
    while True:
        rows = session.execute(query, {"last": last, "batch": batch}).all()
        for seq, at, *rest in rows:
            yield (seq, stored_moment(at), *rest)  # type: ignore[misc]
        if len(rows) < batch:
            return
        last = rows[-1][0]


def canonical_row(entry: LoggedEntry) -> CanonicalRow:
    """An entry object (ORM, appended or exported) as the tuple verification hashes."""
    return (entry.seq, utc_iso(entry.recorded_at), entry.actor, entry.action, entry.subject,
            entry.resource, entry.purpose, entry.outcome, entry.details, entry.prev_hash,
            entry.entry_hash)


def entries_about(session: Session, subject: str, *, limit: int = 500) -> list[AuditEntry]:
    """The newest entries about one subject pseudonym (a customer's own view of the log)."""
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.subject == subject)
            .order_by(col(AuditEntry.seq).desc())
            .limit(limit)
        ).all()
    )
