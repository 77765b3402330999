"""Malformed policy files are refused with the file and line to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmr_vault.policy.loader import PolicyError, load_policy_set

GOOD_RULE = """\
  - id: ok.allow
    description: Fine.
    applies_to: {action: read}
    effect: allow
    reason: ok
"""

MALFORMED = [
    ("yaml syntax", "version: 1\nrules:\n  - id: [unclosed\n", 4, "not valid YAML"),
    ("unknown fact", GOOD_RULE + """\
  - id: bad.fact
    description: x
    applies_to: {action: read}
    when: grant.colour == "red"
    effect: deny
    reason: x
""", 11, "unknown fact 'grant.colour'"),
    ("type error", GOOD_RULE + """\
  - id: bad.type
    description: x
    applies_to: {action: push}
    when: counters.company_day > "many"
    effect: deny
    reason: x
""", 11, "cannot compare int with str"),
    ("condition not boolean", GOOD_RULE + """\
  - id: bad.bool
    description: x
    applies_to: {action: push}
    when: counters.company_day
    effect: deny
    reason: x
""", 11, "expected bool"),
    ("bad expression", GOOD_RULE + """\
  - id: bad.syntax
    description: x
    applies_to: {action: push}
    when: grant.exists and and
    effect: deny
    reason: x
""", 11, "not a valid expression"),
    ("disallowed syntax", GOOD_RULE + """\
  - id: bad.lambda
    description: x
    applies_to: {action: push}
    when: "(lambda: True)()"
    effect: deny
    reason: x
""", 11, "not allowed"),
    ("import attempt", GOOD_RULE + """\
  - id: bad.import
    description: x
    applies_to: {action: push}
    when: __import__("os").system("true") == 0
    effect: deny
    reason: x
""", 11, "is not allowed; functions:"),
    ("subscript", GOOD_RULE + """\
  - id: bad.index
    description: x
    applies_to: {action: push}
    when: grant.scopes[0] == "x"
    effect: deny
    reason: x
""", 11, "indexing is not allowed"),
    ("duplicate id", GOOD_RULE + GOOD_RULE, 8, "duplicate rule id 'ok.allow' (first at"),
    ("unknown effect", """\
  - id: bad.effect
    description: x
    applies_to: {action: read}
    effect: maybe
    reason: x
""", 6, "effect 'maybe' is not one of"),
    ("defer without until", """\
  - id: bad.defer
    description: x
    applies_to: {action: push}
    effect: defer
    reason: x
""", 3, "needs 'until'"),
    ("bad action", """\
  - id: bad.action
    description: x
    applies_to: {action: delete}
    effect: deny
    reason: x
""", 5, "applies_to.action delete is not one of read, push"),
    ("unknown key", """\
  - id: bad.key
    description: x
    applies_to: {action: read}
    effect: allow
    priority: 3
""", 7, "unknown key 'priority'"),
    ("reason with unknown field", """\
  - id: bad.reason
    description: x
    applies_to: {action: read}
    effect: deny
    reason: "no {password}"
""", 7, "reason names unknown fact {password}"),
    ("wrong argument type", """\
  - id: bad.call
    description: x
    applies_to: {action: push}
    when: in_quiet_hours(now, preferences.quiet_start, preferences.quiet_end)
    effect: deny
    reason: x
""", 6, "argument 1 of in_quiet_hours() must be time, not datetime"),
    ("missing description", """\
  - id: bad.description
    applies_to: {action: read}
    effect: allow
""", 3, "a rule needs 'description'"),
]


@pytest.mark.parametrize(("case", "body", "line", "message"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_names_file_line_and_problem(
    tmp_path: Path, case: str, body: str, line: int, message: str
) -> None:
    text = body if body.startswith("version") else "version: 1\nrules:\n" + body
    (tmp_path / "rules.yaml").write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_policy_set(tmp_path)
    problems = raised.value.problems
    assert any(p.startswith(f"{tmp_path / 'rules.yaml'}:{line}: ") and message in p
               for p in problems), (case, problems)


def test_every_problem_in_every_file_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nrules:\n" + MALFORMED[1][1])
    (tmp_path / "b.yaml").write_text("version: 2\nrules: []\n")
    with pytest.raises(PolicyError) as raised:
        load_policy_set(tmp_path)
    files = {p.split(":")[0] for p in raised.value.problems}
    assert files == {str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")}


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no policy files"):
        load_policy_set(tmp_path)


def test_the_shipped_policies_load() -> None:
    policy = load_policy_set(Path(__file__).parents[2] / "policies")
    assert {"read.allowed", "push.quiet-hours", "push.attention-budget-day"} <= {
        r.id for r in policy.rules}
    assert len(policy.version) == 64
