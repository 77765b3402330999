"""`policy check | test | explain` as an operator uses them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cmr_vault.policy.cases import load_cases
from cmr_vault.policy.commands import policy
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.loader import load_policy_set


def test_policy_check_accepts_the_shipped_set(shipped_dir: Path, shipped: PolicySet) -> None:
    result = CliRunner().invoke(policy, ["check", str(shipped_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{len(shipped.rules)} rules, version {shipped.version}"


def test_policy_check_lists_every_problem_and_fails(policy_copy: Path) -> None:
    (policy_copy / "extra.yaml").write_text(
        "version: 1\nrules:\n  - id: x\n    effect: nope\n"
        "  - id: y\n    applies_to: {action: push}\n    when: counters.daily > 1\n"
        "    effect: deny\n    reason: r\n")
    result = CliRunner().invoke(policy, ["check", str(policy_copy)])
    assert result.exit_code == 1
    extra = policy_copy / "extra.yaml"
    assert f"{extra}:4: effect 'nope' is not one of" in result.output
    assert f"{extra}:7: in 'when': unknown fact 'counters.daily'" in result.output


def test_policy_test_passes_on_the_shipped_set(shipped_dir: Path) -> None:
    result = CliRunner().invoke(policy, ["test", str(shipped_dir)])
    assert result.exit_code == 0, result.output
    assert f"{len(load_cases(shipped_dir))} passed, 0 failed" in result.output


def test_policy_test_fails_naming_the_case_when_a_rule_is_broken(policy_copy: Path) -> None:
    marketing = policy_copy / "marketing.yaml"
    text = marketing.read_text()
    flipped = text.replace("counters.company_day >= preferences.cap_day",
                           "counters.company_day < preferences.cap_day")
    assert flipped != text
    marketing.write_text(flipped)
    result = CliRunner().invoke(policy, ["test", str(policy_copy)])
    assert result.exit_code == 1
    assert "FAIL past the daily cap the push is refused" in result.output
    assert "outcome allow, expected deny" in result.output
    assert "FAIL below the daily cap it goes" in result.output


def test_policy_test_fails_when_quiet_hours_stop_deferring(policy_copy: Path) -> None:
    marketing = policy_copy / "marketing.yaml"
    marketing.write_text(marketing.read_text().replace(
        "until: next_local(preferences.quiet_end)", "until: next_local(preferences.quiet_start)"))
    result = CliRunner().invoke(policy, ["test", str(policy_copy)])
    assert result.exit_code == 1
    assert "FAIL quiet hours in Berlin (23:30 local) defer to 07:00 local" in result.output
    assert "expected 2026-11-24 06:00:00+00:00" in result.output


def test_every_shipped_rule_has_a_case_that_fires_it_and_one_that_does_not(
    shipped_dir: Path, shipped: PolicySet
) -> None:
    cases = load_cases(shipped_dir)
    fired: set[str] = set()
    passed_over: set[str] = set()
    for case in cases:
        decision = shipped.decide(case.request, case.facts)
        for trace in shipped.explain(case.request, case.facts):
            if trace.applies and (trace.rule_id in decision.rule_ids
                                  or (trace.condition and trace.effect == "obligation")):
                fired.add(trace.rule_id)
            elif trace.applies or trace.effect in ("allow", "obligation"):
                passed_over.add(trace.rule_id)
    rule_ids = {rule.id for rule in shipped.rules}
    assert rule_ids - fired == set()
    assert {r.id for r in shipped.rules if r.when is not None} - passed_over == set()
    named = {rule for case in cases for rule in case.rules}
    assert {r.id for r in shipped.rules if r.effect in ("deny", "defer")} - named == set()


def test_policy_explain_walks_through_every_rule(tmp_path: Path, shipped_dir: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(
        "request: {action: push, company: c_shop, channel: email, topic: sales,\n"
        "          purpose: newsletter, time: '2026-11-23T22:30:00Z'}\n"
        "facts:\n"
        "  grant: {exists: true, status: active, scopes: [marketing.email],"
        " purposes: [newsletter]}\n"
        "  preferences: {opted_in: true, confirmed_at: '2026-11-01T00:00:00Z',"
        " quiet_start: '22:00', quiet_end: '07:00'}\n"
        "  time_zone: Europe/Berlin\n")
    result = CliRunner().invoke(policy, ["explain", "--request", str(request),
                                         str(shipped_dir)], terminal_width=250)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "push.quiet-hours " in line]
    assert rows and "yes" in rows[0] and "true" in rows[0] and "defer" in rows[0]
    assert "read.allowed" in result.output
    assert "Decision: defer until 2026-11-24T06:00:00+00:00" in result.output
    assert "Obligations: include_unsubscribe_link" in result.output
    assert f"Policy version: {load_policy_set(shipped_dir).version}" in result.output
