"""Compiled rules and the decision: a pure function of a request and its facts.

Rules are indexed by action and channel when the set is compiled, so a decision looks only at
the rules that can apply. The first matching deny (in file order) decides and ends the
evaluation; otherwise any matching defer postpones to the
latest of their times; otherwise the request needs a matching allow, and without one it is
denied by default ("default.deny"), so a forgotten rule never opens anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any, NamedTuple

from cmr_vault.policy.expressions import Context, Getter, Kind, Remembered, Type
from cmr_vault.policy.facts import Decision, DecisionRequest, Facts, Outcome, RuleHit
from cmr_vault.policy.lifecycle import Lifecycle


def _always(_ctx: Context) -> bool:
    return True


DEFAULT_DENY = RuleHit("default.deny", "deny", "no rule allows this")
ACTIONS = ("read", "push", "offer")
CHANNELS = ("email", "sms", "inbox", "webhook")


class Effect(StrEnum):
    """What a matching rule does."""

    DENY = "deny"
    DEFER = "defer"
    ALLOW = "allow"
    OBLIGATION = "obligation"




def _moment(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "minutes") + " UTC"


def _clock(value: time) -> str:
    return _CLOCKS[value]


#: A time of day as a reason shows it: a deferred push shows two, and `isoformat` is slow.
_CLOCKS: Remembered[time, str] = Remembered(lambda value: value.isoformat("minutes"))


def _strings(value: frozenset[str]) -> str:
    return ", ".join(sorted(value)) or "none"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


#: How a reason shows each kind of value: times to the minute, sets as lists. Chosen per
#: placeholder at load time (strftime and isinstance chains are slow on the hot path).
FORMATS: dict[Kind, Callable[[Any], str]] = {
    Kind.DATETIME: _moment, Kind.TIME: _clock, Kind.DATE: date.isoformat,
    Kind.STRSET: _strings, Kind.BOOL: _yes_no,
}


def value_format(kind: Type) -> Callable[[Any], str] | None:
    """The formatter for a placeholder of this type, None when `str.format` shows it right.

    An empty (None) value shows as "none".
    """
    show = FORMATS.get(kind.kind)
    if not kind.optional:
        return show
    present = show or str
    return lambda value: "none" if value is None else present(value)


@dataclass(frozen=True, slots=True)
class Template:
    """A reason template compiled to a `str.format` pattern and one getter per placeholder.

    Getters of string facts are used as they are; others format their value as chosen once
    at load time (`value_format`), so rendering a reason costs one `format` call.
    """

    pattern: str
    values: tuple[Getter, ...] = ()

    def renderer(self) -> Callable[[Context], str]:
        """A closure that renders this reason, built without a loop for the usual few values."""
        fill, values, pattern = self.pattern.format, self.values, self.pattern
        if not values:
            return lambda _ctx: pattern
        if len(values) == 1:
            (a,) = values
            return lambda ctx: fill(a(ctx))
        if len(values) == 2:
            a, b = values
            return lambda ctx: fill(a(ctx), b(ctx))
        if len(values) == 3:
            a, b, c = values
            return lambda ctx: fill(a(ctx), b(ctx), c(ctx))
        if len(values) == 4:
            a, b, c, d = values
            return lambda ctx: fill(a(ctx), b(ctx), c(ctx), d(ctx))
        return lambda ctx: fill(*[value(ctx) for value in values])


NO_REASON = Template("")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to evaluate; `source` is "file:line" for messages.

    `channels`, `purposes` and `topics` are None when the rule does not restrict them.
    """

    id: str
    description: str
    actions: frozenset[str]
    channels: frozenset[str] | None
    purposes: frozenset[str] | None
    topics: frozenset[str] | None
    when: Getter | None
    effect: Effect
    until: Getter | None
    obligation: str
    reason: Template
    source: str

    def matches_request(self, request: DecisionRequest) -> bool:
        """Whether `applies_to` covers this request (action, channel, purpose, topic)."""
        return (request.action in self.actions
                and (self.channels is None or request.channel in self.channels)
                and (self.purposes is None or request.purpose in self.purposes)
                and (self.topics is None or request.topic in self.topics))

    def render(self, ctx: Context) -> str:
        """The reason for this request, its placeholders filled in (for explain; decide uses
        the closure from `Template.renderer`)."""
        return self.reason.renderer()(ctx)

    def test(self) -> Getter:
        """One callable for "does this rule fire": filters and condition, built once."""
        when, purposes, topics = self.when, self.purposes, self.topics
        if purposes is None and topics is None:
            return when or _always

        def fires(ctx: Context) -> bool:
            request = ctx.request
            return ((purposes is None or request.purpose in purposes)
                    and (topics is None or request.topic in topics)
                    and (when is None or bool(when(ctx))))
        return fires


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How one rule fared for one request (for `policy explain`).

    `condition` is None when the rule does not apply; `reason` is rendered only when it fired.
    """

    rule_id: str
    source: str
    applies: bool
    condition: bool | None
    effect: str
    reason: str


#: Per rule: its test, the rule, and its reason renderer.
Tested = tuple[tuple[Getter, CompiledRule, Callable[[Context], str]], ...]


class _Bucket(NamedTuple):
    """The rules that can apply to one action and channel, by effect, each with its test.

    `obligations` is precomputed when no obligation rule has a condition, the common case;
    `deny_tests` are the deny rules' tests alone, for the common case where none fires.
    """

    deny_tests: tuple[Getter, ...]
    denies: Tested
    defers: Tested
    allows: Tested
    obligation_rules: Tested
    obligations: tuple[str, ...] | None


def _bucket(rules: list[CompiledRule]) -> _Bucket:
    def tested(effect: Effect) -> Tested:
        return tuple((rule.test(), rule, rule.reason.renderer()) for rule in rules
                     if rule.effect is effect)

    obligation_rules = tested(Effect.OBLIGATION)
    unconditional = all(test is _always for test, _, _ in obligation_rules)
    denies = tested(Effect.DENY)
    return _Bucket(tuple(test for test, _, _ in denies), denies, tested(Effect.DEFER),
                   tested(Effect.ALLOW),
                   obligation_rules,
                   tuple(dict.fromkeys(r.obligation for _, r, _ in obligation_rules))
                   if unconditional else None)


_EMPTY = _Bucket((), (), (), (), (), ())
_NO_CHANNELS: dict[str, _Bucket] = {}


class PolicySet:
    """An immutable, compiled set of rules with the version hash of its files.

    Rules are bucketed by action and channel (and within that by effect) once, here, so a
    decision evaluates only the rules that can apply, and stops at the first deny that fires.
    """

    __slots__ = ("_index", "lifecycle", "rules", "version")

    def __init__(self, rules: list[CompiledRule] | tuple[CompiledRule, ...],
                 version: str, lifecycle: Lifecycle | None = None) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        self.version = version
        self.lifecycle = lifecycle or Lifecycle()
        self._index: dict[str, dict[str, _Bucket]] = {
            action: {channel: _bucket([r for r in self.rules if action in r.actions
                                       and (r.channels is None or channel in r.channels)])
                     for channel in ("", *CHANNELS)}
            for action in ACTIONS}

    def decide(self, request: DecisionRequest, facts: Facts) -> Decision:
        """Allow, deny or defer-until, with the deciding rules, obligations and version.

        A pure function of its arguments: it reads no clock, file or database, so a recorded
        request and its facts replay to the same decision under the same policy version.
        """
        ctx = Context(request, facts)
        bucket = self._index.get(request.action, _NO_CHANNELS).get(request.channel, _EMPTY)
        for test in bucket.deny_tests:
            if test(ctx):
                _, rule, reason = bucket.denies[bucket.deny_tests.index(test)]
                # The first deny in file order decides; the rest are not evaluated (the
                # policy files list the most basic refusal first: no grant before no opt-in
                # before a cap). The audit entry keeps the request and facts, so
                # `policy explain` replays every rule for anyone who wants the full trace.
                return Decision(Outcome.DENY, None, (RuleHit(rule.id, "deny", reason(ctx)),),
                                (), self.version)
        obligations = bucket.obligations
        if obligations is None:
            obligations = tuple(dict.fromkeys(rule.obligation for test, rule, _
                                              in bucket.obligation_rules if test(ctx)))
        latest: datetime | None = None
        defers: list[RuleHit] = []
        for test, rule, reason in bucket.defers:
            if not test(ctx):
                continue
            until: datetime = rule.until(ctx)  # type: ignore[misc]  # the loader requires it
            # A defer whose moment has already come holds nothing back.
            if until > request.time:
                defers.append(RuleHit(rule.id, "defer", reason(ctx)))
                latest = until if latest is None or until > latest else latest
        if defers:
            return Decision(Outcome.DEFER, latest, tuple(defers), obligations, self.version)
        allows = [RuleHit(rule.id, "allow", reason(ctx)) for test, rule, reason
                  in bucket.allows if test is _always or test(ctx)]
        if allows:
            return Decision(Outcome.ALLOW, None, tuple(allows), obligations, self.version)
        return Decision(Outcome.DENY, None, (DEFAULT_DENY,), (), self.version)

    def explain(self, request: DecisionRequest, facts: Facts) -> list[RuleTrace]:
        """Every rule in file order: whether it applies, what its condition gave, its effect."""
        ctx = Context(request, facts)
        traces = []
        for rule in self.rules:
            applies = rule.matches_request(request)
            condition = None
            if applies:
                condition = True if rule.when is None else bool(rule.when(ctx))
            traces.append(RuleTrace(rule.id, rule.source, applies, condition, str(rule.effect),
                                    rule.render(ctx) if condition else ""))
        return traces
