"""The expression language: typed, whitelisted, compiled once, never evaluated by Python."""

from __future__ import annotations

import ast
import builtins
import re
from datetime import UTC, datetime, time

import pytest

from cmr_vault.policy.expressions import (
    BOOL,
    DATETIME,
    Context,
    ExpressionError,
    compile_expression,
    in_quiet_hours,
)
from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    Counters,
    DecisionRequest,
    Facts,
    GrantFacts,
)

NOW = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)
READ = DecisionRequest(company="c", subject="s", action=Action.READ, resource="profile.email",
                       purpose="p", time=NOW)


def holds(text: str, facts: Facts | None = None, request: DecisionRequest = READ) -> bool:
    expression = compile_expression(text, BOOL)
    return bool(expression.getter(Context(request, facts or Facts())))


def test_global_names_the_customers_settings_across_all_companies() -> None:
    facts = Facts(global_preferences=ChannelPreferences(cap_day=2),
                  counters=Counters(all_day=2))
    assert holds("global.cap_day is not None and counters.all_day >= global.cap_day", facts)
    assert not holds("global.cap_day is not None and counters.all_day >= global.cap_day")


def test_an_empty_value_must_be_checked_before_it_is_compared() -> None:
    with pytest.raises(ExpressionError, match=r"grant\.expires_at may be empty"):
        compile_expression("grant.expires_at <= now", BOOL)
    with pytest.raises(ExpressionError, match="may be empty"):
        compile_expression("grant.expires_at is not None or grant.expires_at <= now", BOOL)
    compile_expression("grant.expires_at is None or grant.expires_at > now", BOOL)
    compile_expression("not is_none(grant.expires_at) and grant.expires_at > now", BOOL)
    compile_expression("not (grant.expires_at is None or grant.expires_at > now)", BOOL)


def test_in_quiet_hours_proves_its_window_present_for_until() -> None:
    when = compile_expression(
        "in_quiet_hours(local_time, preferences.quiet_start, preferences.quiet_end)", BOOL)
    assert when.proves == {"preferences.quiet_start", "preferences.quiet_end"}
    compile_expression("next_local(preferences.quiet_end)", DATETIME, when.proves)
    with pytest.raises(ExpressionError, match=r"preferences\.quiet_end may be empty"):
        compile_expression("next_local(preferences.quiet_end)", DATETIME)


def test_is_none_needs_a_value_that_may_be_empty() -> None:
    with pytest.raises(ExpressionError, match="may be empty, not bool"):
        compile_expression("is_none(grant.exists)", BOOL)
    with pytest.raises(ExpressionError, match="never None"):
        compile_expression("grant.status is None", BOOL)


def test_scopes_fields_and_string_building() -> None:
    facts = Facts(grant=GrantFacts(scopes=frozenset({"profile.email:read"})))
    assert holds('has_scope("profile." + request.field + ":read")', facts)
    assert holds('"profile." + request.field + ":read" in grant.scopes', facts)
    assert not holds('has_scope("profile.phone:read")', facts)
    assert holds('request.action in ["read", "push"] and request.channel == ""')


def test_durations_and_dates() -> None:
    assert holds("now - days(1) < now and now + hours(2) - now == hours(2)")
    assert holds("local_date == local_date + minutes(0)")
    berlin = Facts(time_zone="Europe/Berlin")
    assert holds("local_date - days(1) < local_date and now - request.time == hours(0)",
                 berlin)


def test_local_time_is_on_the_customers_clock() -> None:
    assert holds("local_time == local_time", Facts(time_zone="Asia/Kathmandu"))
    context = Context(READ, Facts(time_zone="Asia/Kathmandu"))
    assert context.local.time() == time(4, 15)
    assert Context(READ, Facts(time_zone="No/Such_Zone")).local.time() == time(22, 30)


def test_chained_and_multi_line_conditions() -> None:
    assert holds("0 <= counters.company_day < 1")
    assert holds("grant.exists == False\n  and counters.all_day == 0")


def test_quiet_windows_may_wrap_midnight() -> None:
    assert in_quiet_hours(time(23), time(22), time(7))
    assert in_quiet_hours(time(6, 59), time(22), time(7))
    assert not in_quiet_hours(time(7), time(22), time(7))
    assert in_quiet_hours(time(12), time(12), time(14))
    assert not in_quiet_hours(time(12), time(12), time(12))
    assert not in_quiet_hours(time(12), None, time(14))


@pytest.mark.parametrize(("text", "message"), [
    ("open('/etc/passwd') is None", "unknown function 'open'"),
    ("grant.__class__ == 1", "names starting with '_'"),
    ("eval('1') == 1", "unknown function 'eval'"),
    ("[x for x in grant.scopes]", "a comprehension is not allowed"),
    ("grant.scopes[0]", "indexing is not allowed"),
    ("grant.exists if True else False", "if/else is not allowed"),
    ("{'a': 1}", "a dict is not allowed"),
    ("f'{grant.status}' == ''", "an f-string is not allowed"),
    ("counters.all_day * 2 > 1", r"only \+ and - are allowed"),
    ("1.5 > counters.all_day", "the literal 1.5 is not allowed"),
    ("grant.status == None", "using `is None`"),
    ("grant.status < 'b'", "str values have no order"),
    ("len(grant.scopes, 1) > 0", r"len\(\) takes 1 argument"),
    ("days(n=1) > hours(1)", "positional arguments only"),
    ("grant.exists) or (grant.exists", r"unbalanced '\)'"),
    ("request.colour == 'red'", "unknown fact 'request.colour'"),
    ("preferences.cap_day + 1 > 2", "arithmetic on a value that may be empty"),
    ("now + 1 > now", "cannot combine datetime and int"),
    ("global.opted_in", "unknown fact 'global.opted_in'"),
])
def test_anything_outside_the_language_is_refused(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, BOOL)


def _compiled_sources(monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[list[str], object]:
    """Compile `text`, recording what reaches Python's compiler as code (not as a tree)."""
    real_compile, real_eval = builtins.compile, builtins.eval
    sources: list[str] = []

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("exec is never used")

    def record_eval(source: str, *args: object) -> object:
        sources.append(source)
        return real_eval(source, *args)  # type: ignore[arg-type]

    def record_compile(source: str, filename: str, mode: str, flags: int = 0,
                       *args: object, **kwargs: object) -> object:
        if not flags & ast.PyCF_ONLY_AST:  # ast.parse gives a tree, never code
            sources.append(source)
        return real_compile(source, filename, mode, flags, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "eval", record_eval)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", record_compile)
    try:
        expression = compile_expression(text, BOOL)
    finally:
        monkeypatch.undo()
    return sources, expression


def test_no_policy_text_reaches_pythons_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled function is written by the compiler: fact paths, operators and bound
    names. A string literal in a policy, however it is quoted, is bound, never spelled out."""
    hostile = "x') or __import__('os').system('true') or ('"
    sources, expression = _compiled_sources(
        monkeypatch, f'not grant.exists and request.purpose != "{hostile}"')
    assert len(sources) == 1
    assert "__import__" not in sources[0] and "system" not in sources[0]
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", sources[0]))
    assert names <= {"lambda", "ctx", "not", "and", "facts", "grant", "exists", "request",
                     "purpose", "_v0"}
    assert expression.getter(Context(READ, Facts()))  # type: ignore[attr-defined]
