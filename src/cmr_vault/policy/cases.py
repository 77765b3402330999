"""Policy test cases and `explain` requests: a request, facts and (for tests) the expectation.

Kept beside the policies in `policies/tests/*.yaml`, so whoever edits a rule sees the cases that
pin it down, and `cmr-vault policy test` fails the moment a rule stops doing what it says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

import yaml

from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    Counters,
    Decision,
    DecisionRequest,
    Facts,
    GrantFacts,
)


class CaseError(ValueError):
    """A case file that cannot be read; the message names the file and case."""


def _moment(value: Any, where: str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise CaseError(f"{where}: {value!r} needs a time zone (e.g. 2026-11-23T10:00:00Z)")
    return moment


def _clock(value: Any) -> time:
    if isinstance(value, int):  # YAML 1.1 reads 22:00 as sexagesimal minutes
        return time(value // 60, value % 60)
    return time.fromisoformat(str(value))


def _preferences(data: dict[str, Any], where: str) -> ChannelPreferences:
    values: dict[str, Any] = dict(data or {})
    for key in ("confirmed_at", "paused_until", "expires_at"):
        if values.get(key) is not None:
            values[key] = _moment(values[key], f"{where}.{key}")
    for key in ("quiet_start", "quiet_end"):
        if values.get(key) is not None:
            values[key] = _clock(values[key])
    values["topics"] = frozenset(values.get("topics", []))
    try:
        return ChannelPreferences(**values)
    except TypeError as exc:
        raise CaseError(f"{where}: {exc}") from exc


def request_from(data: dict[str, Any], where: str) -> DecisionRequest:
    """A DecisionRequest from a case's `request` mapping."""
    values = dict(data)
    try:
        values["action"] = Action(values["action"])
        values["time"] = _moment(values["time"], f"{where}.time")
        values.setdefault("subject", "subject-1")
        values.setdefault("resource", "message" if values["action"] is Action.PUSH else "")
        return DecisionRequest(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise CaseError(f"{where}: not a valid request ({exc})") from exc


def facts_from(data: dict[str, Any], where: str) -> Facts:
    """Facts from a case's `facts` mapping; anything left out takes its default."""
    data = dict(data or {})
    grant = dict(data.get("grant") or {})
    if grant.get("expires_at") is not None:
        grant["expires_at"] = _moment(grant["expires_at"], f"{where}.grant.expires_at")
    grant["scopes"] = frozenset(grant.get("scopes", []))
    grant["purposes"] = frozenset(grant.get("purposes", []))
    try:
        return Facts(
            grant=GrantFacts(**grant),
            preferences=_preferences(data.get("preferences") or {}, f"{where}.preferences"),
            global_preferences=_preferences(data.get("all_companies") or {},
                                            f"{where}.all_companies"),
            counters=Counters(**(data.get("counters") or {})),
            time_zone=str(data.get("time_zone", "UTC")),
        )
    except TypeError as exc:
        raise CaseError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class Case:
    """One test case: what is asked, what is known, what must come out."""

    name: str
    source: str
    request: DecisionRequest
    facts: Facts
    outcome: str
    rules: list[str] = field(default_factory=list)
    defer_until: datetime | None = None
    obligations: list[str] | None = None

    def failures(self, decision: Decision) -> list[str]:
        """What differs from the expectation (empty when the case passes)."""
        found = []
        if str(decision.outcome) != self.outcome:
            found.append(f"outcome {decision.outcome}, expected {self.outcome}")
        missing = [r for r in self.rules if r not in decision.rule_ids]
        if missing:
            found.append(f"rules {decision.rule_ids}, expected to include {missing}")
        if self.defer_until is not None and decision.defer_until != self.defer_until:
            found.append(f"defer until {decision.defer_until}, expected {self.defer_until}")
        if self.obligations is not None and sorted(decision.obligations) != sorted(
                self.obligations):
            found.append(f"obligations {list(decision.obligations)}, "
                         f"expected {self.obligations}")
        return found


def load_cases(directory: Path) -> list[Case]:
    """Every case in `directory/tests/*.yaml`."""
    cases = []
    for path in sorted((directory / "tests").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for number, raw in enumerate(document.get("cases", []), start=1):
            where = f"{path}: case {number} ({raw.get('name', '?')})"
            expect = raw.get("expect") or {}
            if "outcome" not in expect:
                raise CaseError(f"{where}: needs expect.outcome")
            cases.append(Case(
                name=str(raw.get("name", f"case {number}")), source=where,
                request=request_from(raw.get("request") or {}, where),
                facts=facts_from(raw.get("facts") or {}, where),
                outcome=str(expect["outcome"]), rules=list(expect.get("rules", [])),
                defer_until=(_moment(expect["defer_until"], where)
                             if expect.get("defer_until") else None),
                obligations=expect.get("obligations"),
            ))
    return cases


def run_cases(policy: PolicySet, cases: list[Case]) -> list[tuple[Case, list[str]]]:
    """(case, failures) for every case."""
    return [(case, case.failures(policy.decide(case.request, case.facts))) for case in cases]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _preferences_record(prefs: ChannelPreferences, alias: Callable[[str], str]
                        ) -> dict[str, Any]:
    return {
        "opted_in": prefs.opted_in, "confirmed_at": _iso(prefs.confirmed_at),
        "topics": sorted(alias(t) for t in prefs.topics), "cap_day": prefs.cap_day,
        "cap_week": prefs.cap_week, "cap_month": prefs.cap_month,
        "quiet_start": prefs.quiet_start.isoformat() if prefs.quiet_start else None,
        "quiet_end": prefs.quiet_end.isoformat() if prefs.quiet_end else None,
        "paused_until": _iso(prefs.paused_until), "expires_at": _iso(prefs.expires_at),
    }


def _same(value: str) -> str:
    return value


def decision_record(request: DecisionRequest, facts: Facts,
                    alias: Callable[[str], str] = _same) -> dict[str, Any]:
    """The request and facts as JSON, in the shape of a test case, so a decision can be
    replayed later (`replay`). The subject is left out: no decision depends on it.

    A customer's topics say what they care about, so the audit log records them through
    `alias` (a keyed hash): the request's topic is aliased the same way, so `in` and equality
    still replay exactly, while the log holds no interest in clear.
    """
    grant = facts.grant
    return {
        "request": {"action": str(request.action), "company": request.company,
                    "resource": request.resource, "purpose": request.purpose,
                    "time": request.time.isoformat(), "channel": request.channel,
                    "topic": alias(request.topic) if request.topic else ""},
        "facts": {
            "grant": {"exists": grant.exists, "status": grant.status,
                      "expires_at": _iso(grant.expires_at), "scopes": sorted(grant.scopes),
                      "purposes": sorted(grant.purposes)},
            "preferences": _preferences_record(facts.preferences, alias),
            "all_companies": _preferences_record(facts.global_preferences, alias),
            "counters": {name: getattr(facts.counters, name) for name in (
                "company_day", "company_week", "company_month", "all_day", "all_week",
                "all_month")},
            # The zone says where a person lives; it is recorded only when quiet hours made it
            # matter to the decision.
            "time_zone": facts.time_zone if _has_quiet_hours(facts) else "UTC",
        },
    }


def _has_quiet_hours(facts: Facts) -> bool:
    return any(p.quiet_start is not None or p.quiet_end is not None
               for p in (facts.preferences, facts.global_preferences))


def replay(policy: PolicySet, record: dict[str, Any]) -> Decision:
    """Decide a recorded request again, from exactly the facts recorded with it."""
    return policy.decide(request_from(record["request"], "recorded request"),
                         facts_from(record["facts"], "recorded facts"))
