"""The shapes of the marketing API's answers, for the OpenAPI document and its readers."""

from __future__ import annotations

from typing import TypedDict


class DecisionDocument(TypedDict):
    """A policy decision as the API shows it: the outcome, when, which rules, and why."""

    outcome: str
    defer_until: str | None
    rule_ids: list[str]
    reasons: list[str]
    obligations: list[str]
    policy_version: str


class MessageDocument(TypedDict):
    """Where a message is now (never where it went)."""

    message_id: str
    status: str
    not_before: str
    channel: str
    topic: str
    purpose: str
    delivered_at: str | None


class PushAnswer(MessageDocument):
    """A push accepted (queued or deferred); `repeated` when the idempotency key was known."""

    repeated: bool
    decision: DecisionDocument


class ConsentCheckAnswer(DecisionDocument):
    """The decision a push would get now."""

    allowed: bool


class SubjectOutcome(TypedDict):
    """One subject's outcome in a campaign dry run."""

    subject: str
    outcome: str
    rule_ids: list[str]
    not_before: str | None


class DryRunAnswer(TypedDict):
    """A campaign dry run: counts by outcome and by refusing rule, and a result per subject."""

    dry_run: bool
    total: int
    send: int
    defer: int
    refuse: int
    refused_by_rule: dict[str, int]
    results: list[SubjectOutcome]


class CampaignDocument(TypedDict):
    """A campaign's progress, with counts by outcome."""

    campaign_id: str
    status: str
    total: int
    processed: int
    counts: dict[str, int]
    created_at: str
    finished_at: str | None


class CampaignResult(TypedDict):
    """One subject's result in a campaign run."""

    position: int
    subject: str
    outcome: str
    rule_ids: list[str]
    message_id: str | None
    not_before: str | None


class CampaignResults(TypedDict):
    """A page of results; `next_after` is where the next page starts (None at the end)."""

    results: list[CampaignResult]
    next_after: int | None
