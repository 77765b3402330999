"""The shapes of the auditor API's answers, for the OpenAPI document and its readers."""

from __future__ import annotations

from typing import Any, TypedDict


class EntryDocument(TypedDict):
    """An audit entry (pseudonyms, names of things and outcomes; details as an object)."""

    seq: int
    recorded_at: str
    actor: str
    action: str
    subject: str
    resource: str
    purpose: str
    outcome: str
    details: dict[str, Any]
    entry_hash: str


class EntryPage(TypedDict):
    """Entries newest first; `next_before` pages on (None on the last page)."""

    entries: list[EntryDocument]
    next_before: int | None


class ReplayDocument(TypedDict):
    """An entry's recorded decisions, decided again from their recorded facts."""

    seq: int
    replays: list[dict[str, Any]]


class CompanyReportDocument(TypedDict):
    """Counts per day and refusals by reason for one company."""

    company: str
    totals: dict[str, int]
    refusals_by_reason: dict[str, int]
    days: dict[str, dict[str, int]]


class Backlog(TypedDict):
    """One company's consent changes not yet acknowledged."""

    client_id: str
    company: str
    unacknowledged: int
    oldest: str
    age_seconds: int


class BacklogList(TypedDict):
    """Per company: changes not yet acknowledged."""

    companies: list[Backlog]


class SignedHead(TypedDict):
    """A signed tree head."""

    size: int
    root_hash: str
    note: str


class IntegrityDocument(TypedDict):
    """Log size, the latest signed head, the last verification."""

    log_size: int
    latest_checkpoint: SignedHead | None
    last_verification: EntryDocument | None
