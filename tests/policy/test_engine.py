"""Decisions: allow, deny or defer, with reasons, obligations and the policy version."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time

from hypothesis import given, settings
from hypothesis import strategies as st

from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    Counters,
    DecisionRequest,
    Facts,
    GrantFacts,
    Outcome,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PUSH = DecisionRequest(company="c_shop", subject="s1", action=Action.PUSH, resource="message",
                       purpose="newsletter", time=NOW, channel="email", topic="sales")
GRANT = GrantFacts(exists=True, status="active", scopes=frozenset({"marketing.email"}),
                   purposes=frozenset({"newsletter"}))
OPTED_IN = ChannelPreferences(opted_in=True, confirmed_at=datetime(2026, 11, 1, tzinfo=UTC))
FACTS = Facts(grant=GRANT, preferences=OPTED_IN, time_zone="Europe/Berlin")


def test_push_without_opt_in_is_denied_with_the_reason(shipped: PolicySet) -> None:
    decision = shipped.decide(PUSH, replace(FACTS, preferences=ChannelPreferences()))
    assert decision.outcome is Outcome.DENY
    assert "push.not-opted-in" in decision.rule_ids
    assert "has not opted in to email messages from c_shop" in " ".join(decision.reasons)
    assert decision.obligations == ()


def test_an_allowed_push_carries_the_unsubscribe_obligation_and_version(
    shipped: PolicySet
) -> None:
    decision = shipped.decide(PUSH, FACTS)
    assert decision.outcome is Outcome.ALLOW
    assert decision.obligations == ("include_unsubscribe_link",)
    assert decision.policy_version == shipped.version


def test_quiet_hours_defer_until_they_end_in_the_customers_zone(shipped: PolicySet) -> None:
    late = replace(PUSH, time=datetime(2026, 11, 23, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    quiet = replace(FACTS, preferences=replace(OPTED_IN, quiet_start=time(22),
                                               quiet_end=time(7)))
    decision = shipped.decide(late, quiet)
    assert decision.outcome is Outcome.DEFER
    assert decision.defer_until == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert "quiet hours" in decision.reasons[0]


def test_cap_reached_is_denied(shipped: PolicySet) -> None:
    capped = replace(FACTS, preferences=replace(OPTED_IN, cap_day=3),
                     counters=Counters(company_day=3))
    decision = shipped.decide(PUSH, capped)
    assert decision.outcome is Outcome.DENY
    assert decision.rule_ids == ["push.cap-day"]
    assert "3 of 3 messages allowed today" in decision.reasons[0]


def test_a_read_with_no_matching_allow_rule_is_denied_by_default(shipped: PolicySet) -> None:
    no_allow = PolicySet([r for r in shipped.rules if r.id != "read.allowed"], "test")
    read = DecisionRequest(company="c", subject="s", action=Action.READ,
                           resource="profile.email", purpose="p", time=NOW)
    grant = GrantFacts(exists=True, status="active", scopes=frozenset({"profile.email:read"}),
                       purposes=frozenset({"p"}))
    decision = no_allow.decide(read, Facts(grant=grant))
    assert decision.outcome is Outcome.DENY
    assert decision.rule_ids == ["default.deny"]


def test_decision_is_pure_and_repeatable(shipped: PolicySet) -> None:
    assert shipped.decide(PUSH, FACTS) == shipped.decide(PUSH, FACTS)


def test_explain_shows_every_rule_and_which_fired(shipped: PolicySet) -> None:
    traces = shipped.explain(PUSH, replace(FACTS, preferences=ChannelPreferences()))
    assert len(traces) == len(shipped.rules)
    fired = {t.rule_id for t in traces if t.condition}
    assert "push.not-opted-in" in fired
    reads = [t for t in traces if t.rule_id.startswith("read.")]
    assert all(not t.applies for t in reads)


optional_time = st.none() | st.times().map(lambda t: t.replace(tzinfo=None))
optional_moment = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
small = st.none() | st.integers(min_value=0, max_value=50)
preferences = st.builds(
    ChannelPreferences, opted_in=st.booleans(), confirmed_at=optional_moment,
    topics=st.frozensets(st.sampled_from(["sales", "news", "recipes"])), cap_day=small,
    cap_week=small, cap_month=small, quiet_start=optional_time, quiet_end=optional_time,
    paused_until=optional_moment)


@settings(max_examples=300, deadline=None)
@given(
    prefs=preferences, all_companies=preferences,
    counters=st.builds(Counters, *(st.integers(0, 100) for _ in range(6))),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu",
                          "Not/AZone"]),
    status=st.sampled_from(["active", "revoked", "expired", "none"]),
    moment=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1),
                        timezones=st.just(UTC)),
    channel=st.sampled_from(["email", "sms", "inbox", "webhook"]),
)
def test_decide_never_raises_and_defers_only_into_the_future(
    shipped: PolicySet, prefs: ChannelPreferences, all_companies: ChannelPreferences,
    counters: Counters, zone: str, status: str, moment: datetime, channel: str,
) -> None:
    facts = Facts(grant=replace(GRANT, status=status), preferences=prefs,
                  global_preferences=all_companies, counters=counters, time_zone=zone)
    decision = shipped.decide(replace(PUSH, time=moment, channel=channel), facts)
    if decision.outcome is Outcome.DEFER:
        assert decision.defer_until is not None and decision.defer_until > moment
    assert decision.rules
