"""Malformed policy files are refused with the file and line to fix, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmr_vault.policy.loader import PolicyError, load_policy_set

HEADER = "version: 1\nrules:\n"
GOOD_RULE = """\
  - id: ok.allow
    description: Fine.
    applies_to: {action: read}
    effect: allow
    reason: ok
"""


def rule(when: str, *, action: str = "push", effect: str = "deny") -> str:
    """A rule after GOOD_RULE whose `when` sits on line 11 of the file."""
    return GOOD_RULE + f"""\
  - id: bad.rule
    description: x
    applies_to: {{action: {action}}}
    when: {when}
    effect: {effect}
    reason: x
"""


# (case, file body after the header, line of the problem, part of the message)
MALFORMED = [
    ("yaml syntax", "  - id: [unclosed\n", 4, "not valid YAML"),
    ("unknown fact", rule('grant.colour == "red"'), 11, "unknown fact 'grant.colour'"),
    ("unknown function", rule("is_weekend(local_date)"), 11,
     "unknown function 'is_weekend'; functions:"),
    ("wrong argument count", rule("in_quiet_hours(local_time)"), 11,
     "in_quiet_hours() takes 3 argument(s), not 1"),
    ("wrong argument type", rule("in_quiet_hours(now, preferences.quiet_start, "
                                 "preferences.quiet_end)"), 11,
     "argument 1 of in_quiet_hours() must be time, not datetime"),
    ("type error", rule('counters.company_day > "many"'), 11, "cannot compare int with str"),
    ("condition not boolean", rule("counters.company_day"), 11, "expected bool, got int"),
    ("optional compared without a None check", rule("counters.company_day >= "
                                                    "preferences.cap_day"), 11,
     "preferences.cap_day may be empty"),
    ("bad expression", rule("grant.exists and and"), 11, "not a valid expression"),
    ("lambda", rule('"(lambda: True)()"'), 11, "not allowed"),
    ("import attempt", rule('__import__("os").system("true") == 0'), 11,
     "names starting with '_' (__import__) are not allowed"),
    ("subscript", rule('grant.scopes[0] == "x"'), 11, "indexing is not allowed"),
    ("comprehension", rule("len([s for s in grant.scopes]) > 0"), 11,
     "a comprehension is not allowed"),
    ("method call", rule('grant.status.upper() == "X"'), 11,
     "calling 'grant.status.upper' is not allowed"),
    ("attribute on a non-fact", rule("len(grant.scopes).real == 1"), 11,
     "attributes are only allowed on fact names"),
    ("duplicate id", GOOD_RULE + GOOD_RULE, 8, "duplicate rule id 'ok.allow' (first at"),
    ("unknown effect", """\
  - id: bad.effect
    description: x
    applies_to: {action: read}
    effect: maybe
    reason: x
""", 6, "effect 'maybe' is not one of deny, defer, allow, obligation"),
    ("defer without until", """\
  - id: bad.defer
    applies_to: {action: push}
    effect: defer
    reason: x
""", 3, "needs 'until'"),
    ("bad action", """\
  - id: bad.action
    applies_to: {action: delete}
    effect: deny
    reason: x
""", 4, "applies_to.action delete is not one of read, push"),
    ("bad channel", """\
  - id: bad.channel
    applies_to: {action: push, channel: [email, fax]}
    effect: deny
    reason: x
""", 4, "applies_to.channel fax is not one of email, sms, inbox, webhook"),
    ("missing applies_to", """\
  - id: bad.applies
    effect: allow
""", 3, "a rule needs applies_to"),
    ("missing effect", """\
  - id: bad.missing
    applies_to: {action: read}
""", 3, "a rule needs 'effect'"),
    ("unknown key", """\
  - id: bad.key
    applies_to: {action: read}
    effect: allow
    priority: 3
""", 6, "unknown key 'priority'"),
    ("reason with unknown field", """\
  - id: bad.reason
    applies_to: {action: read}
    effect: deny
    reason: "no {password}"
""", 6, "reason names unknown fact {password}"),
    ("until that may be empty", """\
  - id: bad.until
    applies_to: {action: push}
    when: grant.exists
    effect: defer
    until: preferences.paused_until
    reason: x
""", 7, "preferences.paused_until may be empty"),
    ("error on the second line of a block expression", """\
  - id: bad.block
    applies_to: {action: push}
    when: |
      grant.exists
      and grant.colour
    effect: deny
    reason: x
""", 7, "unknown fact 'grant.colour'"),
    ("wrong version", "version: 2\nrules: []\n", 1, "a policy file starts with 'version: 1'"),
]


@pytest.mark.parametrize(("case", "body", "line", "message"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_names_file_line_and_problem(
    tmp_path: Path, case: str, body: str, line: int, message: str
) -> None:
    (tmp_path / "rules.yaml").write_text(body if body.startswith("version") else HEADER + body)
    with pytest.raises(PolicyError) as raised:
        load_policy_set(tmp_path)
    problems = raised.value.problems
    assert any(p.startswith(f"{tmp_path / 'rules.yaml'}:{line}: ") and message in p
               for p in problems), (case, problems)


def test_a_duplicate_id_across_files_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEADER + GOOD_RULE)
    (tmp_path / "b.yaml").write_text(HEADER + "\n" + GOOD_RULE)
    with pytest.raises(PolicyError) as raised:
        load_policy_set(tmp_path)
    assert raised.value.problems == [
        f"{tmp_path / 'b.yaml'}:4: duplicate rule id 'ok.allow' (first at {tmp_path / 'a.yaml'}:3)"
    ]


def test_every_problem_in_every_file_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEADER + rule("grant.colour"))
    (tmp_path / "b.yaml").write_text("version: 2\nrules: []\n")
    first, second = (rule(when)[len(GOOD_RULE):] for when in ("nope", "counters.x > 1"))
    (tmp_path / "c.yaml").write_text(HEADER + first + second.replace("bad.rule", "bad.other"))
    with pytest.raises(PolicyError) as raised:
        load_policy_set(tmp_path)
    problems = raised.value.problems
    assert [p.split(": ")[0].rsplit("/", 1)[1] for p in problems] == [
        "a.yaml:11", "b.yaml:1", "c.yaml:6", "c.yaml:12"]


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no policy files"):
        load_policy_set(tmp_path)


def test_test_cases_beside_the_policies_are_not_policies(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(HEADER + GOOD_RULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "rules.yaml").write_text("cases: []\n")
    assert [r.id for r in load_policy_set(tmp_path).rules] == ["ok.allow"]


def test_the_version_is_stable_and_follows_names_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(HEADER + GOOD_RULE)
    first = load_policy_set(tmp_path).version
    assert load_policy_set(tmp_path).version == first
    (tmp_path / "rules.yaml").rename(tmp_path / "other.yaml")
    renamed = load_policy_set(tmp_path).version
    (tmp_path / "other.yaml").write_text(HEADER + GOOD_RULE + "# comment\n")
    assert len({first, renamed, load_policy_set(tmp_path).version}) == 3


def test_the_shipped_policies_load(shipped_dir: Path) -> None:
    policy = load_policy_set(shipped_dir)
    assert {"read.allowed", "push.quiet-hours", "push.attention-budget-day"} <= {
        r.id for r in policy.rules}
    assert len(policy.version) == 64
