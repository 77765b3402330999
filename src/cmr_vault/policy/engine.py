"""Compiled rules and the decision: a pure function of a request and its facts.

Rules are indexed by action and channel when the set is compiled, so a decision looks only at
the rules that can apply. Any matching deny wins; otherwise any matching defer postpones to the
latest of their times; otherwise the request needs a matching allow, and without one it is
denied by default ("default.deny"), so a forgotten rule never opens anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from cmr_vault.policy.expressions import Context, Getter
from cmr_vault.policy.facts import Decision, DecisionRequest, Facts, Outcome, RuleHit

DEFAULT_DENY = RuleHit("default.deny", "deny", "no policy rule allows this")
CHANNELS = ("email", "sms", "inbox", "webhook")


class Effect(StrEnum):
    """What a matching rule does."""

    DENY = "deny"
    DEFER = "defer"
    ALLOW = "allow"
    OBLIGATION = "obligation"


Template = list[tuple[str, Getter | None]]


def format_value(value: Any) -> str:
    """A fact's value in a reason: times to the minute, sets as lists, empty as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, frozenset | set | list):
        return ", ".join(sorted(value)) or "none"
    return str(value)


@dataclass(frozen=True)
class CompiledRule:
    """One rule, ready to evaluate; `source` is "file:line" for messages."""

    id: str
    description: str
    actions: frozenset[str]
    channels: frozenset[str] | None
    purposes: frozenset[str] | None
    topics: frozenset[str] | None
    when: Callable[[Context], bool] | None
    effect: Effect
    until: Callable[[Context], datetime | None] | None
    obligation: str
    reason: Template
    source: str

    def matches_request(self, request: DecisionRequest) -> bool:
        """Purpose and topic filters (action and channel are handled by the index)."""
        if self.purposes is not None and request.purpose not in self.purposes:
            return False
        return self.topics is None or request.topic in self.topics

    def render(self, ctx: Context) -> str:
        """The reason for this request, its placeholders filled in."""
        return "".join(text if getter is None else format_value(getter(ctx))
                       for text, getter in self.reason)


@dataclass(frozen=True)
class RuleTrace:
    """How one rule fared for one request (for `policy explain`)."""

    rule_id: str
    source: str
    applies: bool
    condition: bool | None
    effect: str
    reason: str


class PolicySet:
    """An immutable, compiled set of rules with the version hash of its files."""

    def __init__(self, rules: list[CompiledRule], version: str) -> None:
        self.rules = tuple(rules)
        self.version = version
        self._index: dict[tuple[str, str], tuple[CompiledRule, ...]] = {}
        for action in ("read", "push"):
            for channel in ("", *CHANNELS):
                self._index[(action, channel)] = tuple(
                    r for r in self.rules if action in r.actions
                    and (r.channels is None or channel in r.channels))

    def _applicable(self, request: DecisionRequest) -> tuple[CompiledRule, ...]:
        return self._index.get((str(request.action), request.channel), ())

    def decide(self, request: DecisionRequest, facts: Facts) -> Decision:
        """Allow, deny or defer-until, with the deciding rules, obligations and version."""
        ctx = Context(request, facts)
        denies: list[RuleHit] = []
        defers: list[tuple[RuleHit, datetime]] = []
        allows: list[RuleHit] = []
        obligations: list[str] = []
        for rule in self._applicable(request):
            if not rule.matches_request(request) or (rule.when is not None
                                                     and not rule.when(ctx)):
                continue
            if rule.effect is Effect.DENY:
                denies.append(RuleHit(rule.id, "deny", rule.render(ctx)))
            elif denies:
                continue
            elif rule.effect is Effect.DEFER:
                until = rule.until(ctx) if rule.until else None
                if until is not None and until > request.time:
                    defers.append((RuleHit(rule.id, "defer", rule.render(ctx)), until))
            elif rule.effect is Effect.ALLOW:
                allows.append(RuleHit(rule.id, "allow", rule.render(ctx)))
            elif rule.obligation not in obligations:
                obligations.append(rule.obligation)
        if denies:
            return Decision(Outcome.DENY, None, tuple(denies), (), self.version)
        if defers:
            until = max(moment for _, moment in defers)
            return Decision(Outcome.DEFER, until, tuple(hit for hit, _ in defers),
                            tuple(obligations), self.version)
        if allows:
            return Decision(Outcome.ALLOW, None, tuple(allows), tuple(obligations),
                            self.version)
        return Decision(Outcome.DENY, None, (DEFAULT_DENY,), (), self.version)

    def explain(self, request: DecisionRequest, facts: Facts) -> list[RuleTrace]:
        """Every rule in file order: whether it applies, what its condition gave, its effect."""
        ctx = Context(request, facts)
        applicable = set(map(id, self._applicable(request)))
        traces = []
        for rule in self.rules:
            applies = id(rule) in applicable and rule.matches_request(request)
            condition = None
            if applies:
                condition = True if rule.when is None else bool(rule.when(ctx))
            traces.append(RuleTrace(rule.id, rule.source, applies, condition, str(rule.effect),
                                    rule.render(ctx) if condition else ""))
        return traces
