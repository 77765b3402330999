"""Decisions: allow, deny or defer, with reasons, obligations and the policy version."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import (
    SEALED_ZONE,
    UNOPENED_TOPICS,
    Action,
    ChannelPreferences,
    Counters,
    DecisionRequest,
    Facts,
    GrantFacts,
    Outcome,
    RuleHit,
    SealedFactNeeded,
)
from cmr_vault.policy.loader import load_policy_set

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
    assert decision.reasons == ["quiet hours (22:00–07:00 on the customer's clock)"]


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
    late = replace(PUSH, time=datetime(2026, 11, 23, 22, 30, tzinfo=UTC))
    quiet = replace(FACTS, preferences=replace(OPTED_IN, quiet_start=time(22),
                                               quiet_end=time(7)))
    for request, facts in ((PUSH, FACTS), (late, quiet), (PUSH, Facts())):
        first = shipped.decide(request, facts)
        assert all(shipped.decide(request, facts) == first for _ in range(3))
        assert request == replace(request) and facts == replace(facts)
    assert shipped.decide(late, quiet) != shipped.decide(PUSH, FACTS)


def test_explain_shows_every_rule_and_which_fired(shipped: PolicySet) -> None:
    traces = shipped.explain(PUSH, replace(FACTS, preferences=ChannelPreferences()))
    assert len(traces) == len(shipped.rules)
    fired = {t.rule_id for t in traces if t.condition}
    assert "push.not-opted-in" in fired
    reads = [t for t in traces if t.rule_id.startswith("read.")]
    assert all(not t.applies for t in reads)


READ = DecisionRequest(company="c_shop", subject="s1", action=Action.READ,
                       resource="profile.email", purpose="receipts", time=NOW)
READ_GRANT = GrantFacts(exists=True, status="active", scopes=frozenset({"profile.email:read"}),
                        purposes=frozenset({"receipts"}))


def test_a_granted_read_is_allowed_without_obligations(shipped: PolicySet) -> None:
    decision = shipped.decide(READ, Facts(grant=READ_GRANT))
    assert decision.outcome is Outcome.ALLOW
    assert decision.rule_ids == ["read.allowed"]
    assert decision.reasons == ['granted: email for "receipts"']
    assert decision.obligations == ()


def test_a_read_of_a_field_without_its_scope_names_the_missing_scope(
    shipped: PolicySet
) -> None:
    decision = shipped.decide(replace(READ, resource="profile.phone"), Facts(grant=READ_GRANT))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons == ["the customer has not granted profile.phone:read to c_shop"]


def test_an_expired_grant_is_denied_with_its_expiry_in_the_reason(shipped: PolicySet) -> None:
    expired = replace(READ_GRANT, expires_at=datetime(2026, 11, 23, 9, 59, tzinfo=UTC))
    decision = shipped.decide(READ, Facts(grant=expired))
    assert decision.outcome is Outcome.DENY
    assert decision.rule_ids == ["read.grant-expired"]
    assert decision.reasons == ["the grant expired on 2026-11-23 09:59 UTC"]


def test_the_first_deny_in_file_order_decides_and_explain_still_shows_every_rule(
    shipped: PolicySet
) -> None:
    revoked = replace(READ_GRANT, status="revoked", purposes=frozenset())
    decision = shipped.decide(READ, Facts(grant=revoked))
    assert decision.rule_ids == ["read.grant-not-active"]
    assert decision.reasons == ["the customer's grant to c_shop is revoked"]
    fired = [t.rule_id for t in shipped.explain(READ, Facts(grant=revoked)) if t.condition]
    assert fired == ["read.grant-not-active", "read.purpose-not-consented", "read.allowed"]


def test_a_defer_carries_the_obligations_and_the_latest_time(shipped: PolicySet) -> None:
    late = replace(PUSH, time=datetime(2026, 11, 23, 22, 30, tzinfo=UTC))
    prefs = replace(OPTED_IN, quiet_start=time(22), quiet_end=time(7),
                    paused_until=datetime(2026, 11, 24, 9, tzinfo=UTC))
    decision = shipped.decide(late, replace(FACTS, preferences=prefs))
    assert decision.outcome is Outcome.DEFER
    assert decision.rule_ids == ["push.paused", "push.quiet-hours"]
    assert decision.defer_until == datetime(2026, 11, 24, 9, tzinfo=UTC)
    assert decision.obligations == ("include_unsubscribe_link",)


def test_quiet_hours_end_on_local_time_after_the_clocks_go_forward(shipped: PolicySet) -> None:
    # 00:30 CET on 29 March 2026; at 02:00 Berlin moves to CEST, so 07:00 local is 05:00 UTC.
    night = replace(PUSH, time=datetime(2026, 3, 28, 23, 30, tzinfo=UTC))
    quiet = replace(FACTS, preferences=replace(OPTED_IN, quiet_start=time(22),
                                               quiet_end=time(7)))
    assert shipped.decide(night, quiet).defer_until == datetime(2026, 3, 29, 5, tzinfo=UTC)


def test_an_unknown_time_zone_falls_back_to_utc(shipped: PolicySet) -> None:
    late = replace(PUSH, time=datetime(2026, 11, 23, 22, 30, tzinfo=UTC))
    quiet = replace(FACTS, time_zone="Mars/Olympus_Mons",
                    preferences=replace(OPTED_IN, quiet_start=time(22), quiet_end=time(7)))
    assert shipped.decide(late, quiet).defer_until == datetime(2026, 11, 24, 7, tzinfo=UTC)


def test_the_global_attention_budget_counts_every_company(shipped: PolicySet) -> None:
    budget = replace(FACTS, global_preferences=ChannelPreferences(cap_week=10),
                     counters=Counters(all_week=10))
    decision = shipped.decide(PUSH, budget)
    assert decision.rule_ids == ["push.attention-budget-week"]
    assert decision.reasons == [
        "the customer's attention budget of 10 messages a week is used up"]


def test_a_push_on_an_unknown_channel_is_denied_by_default(shipped: PolicySet) -> None:
    decision = shipped.decide(replace(PUSH, channel="carrier-pigeon"), FACTS)
    assert decision.rules == (RuleHit("default.deny", "deny", "no rule allows this"),)


def test_a_rule_limited_to_a_purpose_or_topic_applies_only_there(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "version: 1\nrules:\n"
        "  - id: sales.only\n    applies_to: {action: push, topic: sales, purpose: [offers]}\n"
        "    effect: allow\n    reason: sales offers\n")
    rules = load_policy_set(tmp_path)
    assert rules.decide(replace(PUSH, purpose="offers"), FACTS).outcome is Outcome.ALLOW
    assert rules.decide(PUSH, FACTS).rule_ids == ["default.deny"]
    assert rules.decide(replace(PUSH, purpose="offers", topic="news"), FACTS).rule_ids == [
        "default.deny"]


def test_the_audit_record_is_json_ready(shipped: PolicySet) -> None:
    late = replace(PUSH, time=datetime(2026, 11, 23, 22, 30, tzinfo=UTC))
    quiet = replace(FACTS, preferences=replace(OPTED_IN, quiet_start=time(22),
                                               quiet_end=time(7)))
    record = shipped.decide(late, quiet).as_record()
    assert json.loads(json.dumps(record)) == record
    assert record == {
        "outcome": "defer", "defer_until": "2026-11-24T06:00:00+00:00",
        "rule_ids": ["push.quiet-hours"],
        "reasons": ["quiet hours (22:00–07:00 on the customer's clock)"],
        "obligations": ["include_unsubscribe_link"], "policy_version": shipped.version,
    }


optional_time = st.none() | st.times()
optional_moment = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
small = st.none() | st.integers(min_value=-5, max_value=50)
words = st.sampled_from(["sales", "news", "recipes", "", "newsletter", "receipts"]) | st.text()
preferences = st.builds(
    ChannelPreferences, opted_in=st.booleans(), confirmed_at=optional_moment,
    topics=st.frozensets(words, max_size=4), cap_day=small, cap_week=small, cap_month=small,
    quiet_start=optional_time, quiet_end=optional_time, paused_until=optional_moment)
grants = st.builds(
    GrantFacts, exists=st.booleans(),
    status=st.sampled_from(["active", "revoked", "expired", "none"]) | st.text(),
    expires_at=optional_moment,
    scopes=st.frozensets(st.sampled_from(["marketing.email", "marketing.sms",
                                          "profile.email:read"]) | st.text(), max_size=4),
    purposes=st.frozensets(words, max_size=4))
requests = st.builds(
    DecisionRequest, company=st.text(), subject=st.text(), action=st.sampled_from(Action),
    resource=st.sampled_from(["profile.email", "profile.phone", "message"]) | st.text(),
    purpose=words, time=st.datetimes(min_value=datetime(2001, 1, 1),
                                     max_value=datetime(2099, 1, 1), timezones=st.just(UTC)),
    channel=st.sampled_from(["email", "sms", "inbox", "webhook", ""]) | st.text(),
    topic=words)
facts = st.builds(
    Facts, grant=grants, preferences=preferences, global_preferences=preferences,
    counters=st.builds(Counters, *(st.integers(0, 100) for _ in range(6))),
    time_zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu",
                               "Australia/Lord_Howe"]) | st.text())


@settings(max_examples=400, deadline=None)
@given(request=requests, facts=facts)
def test_decide_never_raises_for_arbitrary_facts_and_defers_only_into_the_future(
    shipped: PolicySet, request: DecisionRequest, facts: Facts
) -> None:
    decision = shipped.decide(request, facts)
    assert decision.rules
    assert decision.policy_version == shipped.version
    if decision.outcome is Outcome.DEFER:
        assert decision.defer_until is not None and decision.defer_until > request.time
    else:
        assert decision.defer_until is None
    if decision.outcome is Outcome.DENY:
        assert decision.obligations == ()
        assert all(hit.effect == "deny" for hit in decision.rules)
    assert len(shipped.explain(request, facts)) == len(shipped.rules)


def test_a_decision_that_never_looks_at_sealed_facts_is_made_without_them(
    shipped: PolicySet
) -> None:
    sealed = replace(FACTS, time_zone=SEALED_ZONE,
                     preferences=replace(OPTED_IN, opted_in=False, topics=UNOPENED_TOPICS))
    assert shipped.decide(PUSH, sealed).rule_ids == ["push.not-opted-in"]
    with pytest.raises(SealedFactNeeded):
        shipped.decide(PUSH, replace(sealed, preferences=replace(OPTED_IN,
                                                                 topics=UNOPENED_TOPICS)))
    quiet = replace(sealed, preferences=replace(OPTED_IN, quiet_start=time(22),
                                                quiet_end=time(7)))
    with pytest.raises(SealedFactNeeded):
        shipped.decide(PUSH, quiet)
