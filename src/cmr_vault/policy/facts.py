"""What a decision is asked about (the request), what it knows (facts), and what it answers.

All frozen values: a decision is a pure function of a request and its facts, so the same
inputs always give the same answer and any recorded decision can be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any, NamedTuple


class Action(StrEnum):
    """What a company wants to do."""

    READ = "read"
    PUSH = "push"
    OFFER = "offer"


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """One company action about one subject at one moment."""

    company: str
    subject: str
    action: Action
    resource: str
    purpose: str
    time: datetime
    channel: str = ""
    topic: str = ""

    @property
    def field(self) -> str:
        """The profile field a read names ("email" for "profile.email"), else ""."""
        return self.resource.removeprefix("profile.") if self.resource.startswith(
            "profile.") else ""


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """What the customer's grant to this company says, for the scope in question."""

    exists: bool = False
    status: str = "none"
    expires_at: datetime | None = None
    scopes: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()


class SealedFactNeeded(LookupError):
    """A decision looked at a fact that was left sealed: open it and decide again.

    Bulk deciders (campaigns) decide first without opening anything sealed; a decision that
    never looks at the customer's topics or clock is final as it is, and only the others pay
    for a key unwrap. Raised at the first look, so no value is ever guessed.
    """


class SealedTopics(frozenset[str]):
    """Topics the customer set, not yet opened: any look at them raises SealedFactNeeded."""

    def _sealed(self, *_args: object) -> Any:
        raise SealedFactNeeded("topics")

    __contains__ = __iter__ = __len__ = _sealed


UNOPENED_TOPICS = SealedTopics()
#: The customer's time zone, not yet opened: working out their wall clock raises
#: SealedFactNeeded (compared by identity, so no real zone name can be mistaken for it).
SEALED_ZONE = "sealed:time_zone"


@dataclass(frozen=True, slots=True)
class ChannelPreferences:
    """The customer's settings for one company and channel (or across all companies)."""

    opted_in: bool = False
    confirmed_at: datetime | None = None
    topics: frozenset[str] = frozenset()
    cap_day: int | None = None
    cap_week: int | None = None
    cap_month: int | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    paused_until: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    """Messages already sent to this subject: by this company, and by all companies."""

    company_day: int = 0
    company_week: int = 0
    company_month: int = 0
    all_day: int = 0
    all_week: int = 0
    all_month: int = 0


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a decision may look at besides the request itself."""

    grant: GrantFacts = field(default_factory=GrantFacts)
    preferences: ChannelPreferences = field(default_factory=ChannelPreferences)
    global_preferences: ChannelPreferences = field(default_factory=ChannelPreferences)
    counters: Counters = field(default_factory=Counters)
    time_zone: str = "UTC"


class Outcome(StrEnum):
    """The answer."""

    ALLOW = "allow"
    DENY = "deny"
    DEFER = "defer"


class RuleHit(NamedTuple):
    """A rule that decided, with its reason rendered for this request.

    Named tuples, not frozen dataclasses, for this and `Decision`: every decision builds them,
    and a frozen dataclass sets each field through `object.__setattr__`, which was a fifth of
    an allowed push's time.
    """

    rule_id: str
    effect: str
    reason: str


class Decision(NamedTuple):
    """Allow, deny or defer-until, with the rules and reasons that decided it."""

    outcome: Outcome
    defer_until: datetime | None
    rules: tuple[RuleHit, ...]
    obligations: tuple[str, ...]
    policy_version: str

    @property
    def reasons(self) -> list[str]:
        """The deciding rules' reasons, in words a person can read."""
        return [hit.reason for hit in self.rules]

    @property
    def rule_ids(self) -> list[str]:
        """The deciding rules' ids."""
        return [hit.rule_id for hit in self.rules]

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, for the audit log and API answers."""
        return {
            "outcome": str(self.outcome),
            "defer_until": self.defer_until.isoformat() if self.defer_until else None,
            "rule_ids": self.rule_ids,
            "reasons": self.reasons,
            "obligations": list(self.obligations),
            "policy_version": self.policy_version,
        }
