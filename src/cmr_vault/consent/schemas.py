"""The shapes of the consent API's answers, for the OpenAPI document and its readers.

Typed dictionaries rather than models: the handlers keep returning plain documents, and the
schema says exactly what they hold (`None` where a value may be absent).
"""

from __future__ import annotations

from typing import Any, TypedDict


class GrantDocument(TypedDict):
    """A grant as its company sees it: the company's pairwise subject, never the account."""

    grant_id: str
    subject: str
    status: str
    dpv_status: str
    scopes: list[str]
    purposes: dict[str, list[str]]
    notice_version: int
    expires_at: str | None
    granted_at: str
    updated_at: str


class GrantList(TypedDict):
    """Every grant customers gave the company."""

    grants: list[GrantDocument]


class WebhookRegistered(TypedDict):
    """The webhook just registered, with its signing secret (shown this once)."""

    url: str
    secret: str
    scheme: str


class WebhookDocument(TypedDict):
    """The registered webhook (never its secret)."""

    url: str
    updated_at: str


class EventDocument(TypedDict):
    """One company event: the signed payload (type, timestamp, data) and its delivery state."""

    id: str
    type: str
    timestamp: str
    data: dict[str, Any]
    attempts: int
    delivered_at: str | None
    acknowledged_at: str | None
    last_error: str | None


class EventList(TypedDict):
    """The company's events, oldest first."""

    events: list[EventDocument]


class NoticeDocument(TypedDict):
    """The notice now in force: scope -> purposes, and its version."""

    notice: dict[str, list[str]]
    notice_version: int


class ReceiptCheckDocument(TypedDict):
    """Whether a receipt file verifies, and why not."""

    valid: bool
    problems: list[str]
    receipt_id: str | None
    cosigned_by: list[str]


class KeySetDocument(TypedDict):
    """A JWK set (RFC 7517 §5): the receipt key and the id_token keys, each with kid and alg."""

    keys: list[dict[str, str]]
