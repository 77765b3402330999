"""Policy decisions per second: our compiled engine against Cedar (cedarpy), in the same run.

    python bench/policy_decisions.py [--decisions 20000]

Five decisions on the shipped policy set (policies/): an e-mail push that is allowed, one that
is deferred by quiet hours in Europe/Berlin, one denied by the company's day cap, one denied
for want of an opt-in, and a read of profile.email. Cedar gets the same
rules as an equivalent Cedar policy, parsed once (a pre-parsed PolicySet and Entities handle,
its fastest use), with each request's context built before timing. Cedar is given help it
cannot do without: the customer's local minute of the day and the scope strings are worked
out for it, it has no defer (quiet hours are a forbid) and it renders no reasons, so the
comparison flatters Cedar. Both answers are checked to agree before timing. Printed, never
asserted (see bench/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    Counters,
    DecisionRequest,
    Facts,
    GrantFacts,
    Outcome,
)
from cmr_vault.policy.loader import load_policy_set

POLICIES = Path(__file__).parents[1] / "policies"

CEDAR_POLICY = """
@id("read.allowed") permit(principal, action == Action::"read", resource);
@id("push.allowed") permit(principal, action == Action::"push", resource);
@id("grant-missing") forbid(principal, action, resource) when { !context.grant.exists };
@id("grant-not-active") forbid(principal, action, resource)
  when { context.grant.exists && context.grant.status != "active" };
@id("grant-expired") forbid(principal, action, resource)
  when { context.grant has expires_at && context.grant.expires_at <= context.now };
@id("scope-missing") forbid(principal, action, resource)
  when { context.grant.exists && !context.grant.scopes.contains(context.scope) };
@id("purpose-not-consented") forbid(principal, action, resource)
  when { context.grant.exists && !context.grant.purposes.contains(context.purpose) };
@id("push.not-opted-in") forbid(principal, action == Action::"push", resource)
  when { !context.preferences.opted_in };
@id("push.email-not-confirmed") forbid(principal, action == Action::"push", resource)
  when { context.channel == "email" && context.preferences.opted_in
         && !(context.preferences has confirmed_at) };
@id("push.topic-not-wanted") forbid(principal, action == Action::"push", resource)
  when { context.preferences.topics != []
         && !context.preferences.topics.contains(context.topic) };
@id("push.cap-day") forbid(principal, action == Action::"push", resource)
  when { context.preferences has cap_day
         && context.counters.company_day >= context.preferences.cap_day };
@id("push.cap-week") forbid(principal, action == Action::"push", resource)
  when { context.preferences has cap_week
         && context.counters.company_week >= context.preferences.cap_week };
@id("push.cap-month") forbid(principal, action == Action::"push", resource)
  when { context.preferences has cap_month
         && context.counters.company_month >= context.preferences.cap_month };
@id("push.attention-budget-day") forbid(principal, action == Action::"push", resource)
  when { context.global has cap_day && context.counters.all_day >= context.global.cap_day };
@id("push.attention-budget-week") forbid(principal, action == Action::"push", resource)
  when { context.global has cap_week && context.counters.all_week >= context.global.cap_week };
@id("push.attention-budget-month") forbid(principal, action == Action::"push", resource)
  when { context.global has cap_month && context.counters.all_month >= context.global.cap_month };
@id("push.paused") forbid(principal, action == Action::"push", resource)
  when { context.preferences has paused_until
         && context.preferences.paused_until > context.now };
@id("push.paused-all") forbid(principal, action == Action::"push", resource)
  when { context.global has paused_until && context.global.paused_until > context.now };
@id("push.quiet-hours") forbid(principal, action == Action::"push", resource)
  when { ["email", "sms", "webhook"].contains(context.channel)
         && context.preferences has quiet_start && context.preferences has quiet_end
         && ((context.preferences.quiet_start < context.preferences.quiet_end
              && context.local_minute >= context.preferences.quiet_start
              && context.local_minute < context.preferences.quiet_end)
          || (context.preferences.quiet_start > context.preferences.quiet_end
              && (context.local_minute >= context.preferences.quiet_start
                  || context.local_minute < context.preferences.quiet_end))) };
@id("push.quiet-hours-all") forbid(principal, action == Action::"push", resource)
  when { ["email", "sms", "webhook"].contains(context.channel)
         && context.global has quiet_start && context.global has quiet_end
         && ((context.global.quiet_start < context.global.quiet_end
              && context.local_minute >= context.global.quiet_start
              && context.local_minute < context.global.quiet_end)
          || (context.global.quiet_start > context.global.quiet_end
              && (context.local_minute >= context.global.quiet_start
                  || context.local_minute < context.global.quiet_end))) };
"""

DAYTIME = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
PUSH = DecisionRequest(company="c_shop", subject="s1", action=Action.PUSH, resource="message",
                       purpose="newsletter", time=DAYTIME, channel="email", topic="sales")
READ = DecisionRequest(company="c_shop", subject="s1", action=Action.READ,
                       resource="profile.email", purpose="receipts", time=DAYTIME)
GRANT = GrantFacts(exists=True, status="active",
                   expires_at=datetime(2027, 1, 1, tzinfo=UTC),
                   scopes=frozenset({"marketing.email", "profile.email:read"}),
                   purposes=frozenset({"newsletter", "receipts"}))
PREFERENCES = ChannelPreferences(opted_in=True, confirmed_at=datetime(2026, 11, 1, tzinfo=UTC),
                                 topics=frozenset({"sales", "recipes"}), cap_day=3, cap_week=10,
                                 quiet_start=clock(22), quiet_end=clock(7))
FACTS = Facts(grant=GRANT, preferences=PREFERENCES,
              global_preferences=ChannelPreferences(cap_day=10, cap_month=100),
              counters=Counters(company_day=1, company_week=2, all_day=4, all_month=30),
              time_zone="Europe/Berlin")
SCENARIOS = [
    ("push, allowed", PUSH, FACTS),
    ("push, deferred (quiet hours)",
     DecisionRequest(**{**{f: getattr(PUSH, f) for f in PUSH.__slots__}, "time": NIGHT}), FACTS),
    ("push, denied (day cap reached)", PUSH,
     replace(FACTS, counters=replace(FACTS.counters, company_day=3))),
    ("push, denied (not opted in)", PUSH,
     replace(FACTS, preferences=replace(PREFERENCES, opted_in=False))),
    ("read profile.email, allowed", READ, FACTS),
]


def _preferences_context(prefs: ChannelPreferences) -> dict[str, Any]:
    context: dict[str, Any] = {"opted_in": prefs.opted_in, "topics": sorted(prefs.topics)}
    for name in ("cap_day", "cap_week", "cap_month"):
        if getattr(prefs, name) is not None:
            context[name] = getattr(prefs, name)
    for name in ("confirmed_at", "paused_until"):
        if getattr(prefs, name) is not None:
            context[name] = int(getattr(prefs, name).timestamp())
    for name in ("quiet_start", "quiet_end"):
        moment = getattr(prefs, name)
        if moment is not None:
            context[name] = moment.hour * 60 + moment.minute
    return context


def cedar_request(request: DecisionRequest, facts: Facts) -> dict[str, Any]:
    """The same question in Cedar's terms; what Cedar cannot compute is computed here."""
    local = request.time.astimezone(ZoneInfo(facts.time_zone))
    grant: dict[str, Any] = {"exists": facts.grant.exists, "status": facts.grant.status,
                             "scopes": sorted(facts.grant.scopes),
                             "purposes": sorted(facts.grant.purposes)}
    if facts.grant.expires_at is not None:
        grant["expires_at"] = int(facts.grant.expires_at.timestamp())
    scope = (f"marketing.{request.channel}" if request.action is Action.PUSH
             else f"{request.resource}:read")
    return {
        "principal": f'Company::"{request.company}"',
        "action": f'Action::"{request.action}"',
        "resource": f'Subject::"{request.subject}"',
        "context": {
            "now": int(request.time.timestamp()), "local_minute": local.hour * 60 + local.minute,
            "channel": request.channel, "topic": request.topic, "purpose": request.purpose,
            "scope": scope, "grant": grant,
            "preferences": _preferences_context(facts.preferences),
            "global": _preferences_context(facts.global_preferences),
            "counters": {name: getattr(facts.counters, name) for name in Counters.__slots__},
        },
    }


def per_decision(ours: Callable[[], object], cedar: Callable[[], object], decisions: int,
                 rounds: int = 7) -> tuple[float, float]:
    """Microseconds per call for each, best of `rounds`, the two timed turn about.

    Alternating in short rounds gives both the same share of a noisy machine, and the best
    round is the one least disturbed by other work.
    """
    best = [float("inf"), float("inf")]
    per_round = max(decisions // rounds, 1)
    for _ in range(rounds):
        for slot, call in enumerate((ours, cedar)):
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            best[slot] = min(best[slot], time.perf_counter() - start)
    return best[0] / per_round * 1e6, best[1] / per_round * 1e6


def main() -> None:
    """Time both engines on each scenario and print µs/decision and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    decisions = parser.parse_args().decisions
    try:
        import cedarpy  # optional: only this benchmark needs it
    except ImportError:
        print("cedarpy is not installed, so there is no baseline to compare with; "
              "install it with `pip install cedarpy` and run again.")
        sys.exit(0)

    policy_set = load_policy_set(POLICIES)
    cedar_policies = cedarpy.PolicySet.from_str(CEDAR_POLICY)
    no_entities = cedarpy.Entities.from_json_str("[]")
    print(f"{decisions} decisions each, best of 7 alternating rounds; policy version "
          f"{policy_set.version[:12]}, {len(policy_set.rules)} rules; cedarpy with a "
          "pre-parsed policy set\n")
    print(f"{'scenario':32} {'outcome':>8} {'ours µs':>9} {'cedar µs':>9} {'ratio':>7}")
    for name, request, facts in SCENARIOS:
        ours = policy_set.decide(request, facts)
        cedar_question = cedar_request(request, facts)
        cedar = cedarpy.is_authorized(cedar_question, cedar_policies, no_entities)
        agree = cedar.allowed == (ours.outcome is Outcome.ALLOW)
        ours_us, cedar_us = per_decision(
            lambda r=request, f=facts: policy_set.decide(r, f),
            lambda q=cedar_question: cedarpy.is_authorized(q, cedar_policies, no_entities),
            decisions)
        note = "" if agree else f"  (answers differ: cedar {cedar.decision})"
        print(f"{name:32} {ours.outcome!s:>8} {ours_us:9.2f} {cedar_us:9.2f} "
              f"{cedar_us / ours_us:6.1f}×{note}")


if __name__ == "__main__":
    main()
