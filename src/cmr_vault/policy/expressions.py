"""The policy expression language: a small, typed, side-effect-free subset of Python syntax.

Python's own parser reads the text (`ast.parse(mode="eval")`); the text itself is never
evaluated. Each node is checked against a whitelist and the schema of known facts, type-checked,
and compiled once, at load time, into one Python function over a decision's `Context`, written
by the compiler from the checked nodes (see `_Compiler`: no text of the policy reaches Python's
compiler; literals are bound by name). Allowed:

- known fact names (`grant.scopes`, `preferences.cap_day`, `global.quiet_end`, `now`, …; see
  FACTS); `global` is a Python keyword, so it is renamed before parsing;
- literals: integers, strings, True/False/None, lists of strings;
- `and`, `or`, `not`; comparisons `== != < <= > >=`, `in`, `not in`, `is None`, `is not None`;
- `+`/`-` on integers and durations, a datetime or date plus/minus a duration, `+` on strings;
- the functions in FUNCTIONS.

Empty values are explicit. A fact that may be empty (None, such as `grant.expires_at` or
`preferences.cap_day`) may not be compared or computed with until the expression has shown it
is present, the way a type checker narrows an Optional: `x is not None and x <= now`,
`x is None or x <= now`, `not is_none(x) and …`. A function that is only true when its
arguments are present (`in_quiet_hours`) proves them present too. A defer rule's `until` is
evaluated only when its `when` is true, so it may use what `when` proved. Anything else is a
type error at load time, so no rule silently means "deny when empty" or "allow when empty".
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cmr_vault.policy.facts import SEALED_ZONE, DecisionRequest, Facts, SealedFactNeeded


class Kind(StrEnum):
    """The value types of the language."""

    BOOL = "bool"
    INT = "int"
    STR = "str"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    DURATION = "duration"
    STRSET = "set of strings"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class Type:
    """A kind, and whether the value may be empty (None)."""

    kind: Kind
    optional: bool = False

    def __str__(self) -> str:
        return f"optional {self.kind}" if self.optional and self.kind != Kind.NONE \
            else str(self.kind)


class ExpressionError(ValueError):
    """An expression that cannot be compiled; `line_offset` is its line within the text."""

    def __init__(self, message: str, line_offset: int = 0) -> None:
        super().__init__(message)
        self.line_offset = line_offset


_UTC_ZONE = ZoneInfo("UTC")


class Context:
    """One decision's inputs; the customer's local time is worked out only when asked for."""

    __slots__ = ("_local", "facts", "request")

    def __init__(self, request: DecisionRequest, facts: Facts) -> None:
        self.request = request
        self.facts = facts
        self._local: datetime | None = None

    @property
    def local(self) -> datetime:
        """The request time on the customer's wall clock (UTC if the zone is unknown).

        Remembered per moment and zone: a campaign decides a million subjects at one moment
        among a few hundred zones, so each zone's wall clock is worked out once.
        """
        if self._local is None:
            self._local = _LOCAL_TIMES[(self.request.time, self.facts.time_zone)]
        return self._local


K = TypeVar("K")
V = TypeVar("V")


class Remembered(dict[K, V]):
    """A pure function's answers by argument, shared by every thread and decision.

    Bounded: emptied when full, since its keys come from data (moments, zones, times) and each
    answer is cheap to work out again. A miss that raises stores nothing.
    """

    def __init__(self, work_out: Callable[[K], V], kept: int = 4096) -> None:
        super().__init__()
        self._work_out, self._kept = work_out, kept

    def __missing__(self, key: K) -> V:
        value = self._work_out(key)
        if len(self) >= self._kept:
            self.clear()
        self[key] = value
        return value


def _wall_clock(key: tuple[datetime, str]) -> datetime:
    moment, zone = key
    if zone is SEALED_ZONE:
        raise SealedFactNeeded("time_zone")
    return moment.astimezone(zone_of(zone))


#: (moment, zone name) -> that moment on the zone's wall clock.
_LOCAL_TIMES: Remembered[tuple[datetime, str], datetime] = Remembered(_wall_clock)


_ZONES: dict[str, ZoneInfo] = {}


def zone_of(name: str) -> ZoneInfo:
    """The named IANA zone, UTC when unknown (a decision must not fail on a bad setting).

    Known zones are kept in a plain dict, faster than ZoneInfo's own cache; only real zone
    names enter it, so arbitrary strings cannot grow it.
    """
    zone = _ZONES.get(name)
    if zone is None:
        try:
            zone = _ZONES[name] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            return _UTC_ZONE
    return zone


Getter = Callable[[Context], Any]
BOOL, INT, STR = Type(Kind.BOOL), Type(Kind.INT), Type(Kind.STR)
DATETIME, DATE, TIME = Type(Kind.DATETIME), Type(Kind.DATE), Type(Kind.TIME)
STRSET, DURATION = Type(Kind.STRSET), Type(Kind.DURATION)
OPT_DATETIME, OPT_TIME, OPT_INT = (Type(Kind.DATETIME, True), Type(Kind.TIME, True),
                                   Type(Kind.INT, True))

_PREFERENCES = {"opted_in": BOOL, "confirmed_at": OPT_DATETIME, "topics": STRSET,
                "cap_day": OPT_INT, "cap_week": OPT_INT, "cap_month": OPT_INT,
                "quiet_start": OPT_TIME, "quiet_end": OPT_TIME, "paused_until": OPT_DATETIME,
                "expires_at": OPT_DATETIME}
_GRANT = {"exists": BOOL, "status": STR, "expires_at": OPT_DATETIME, "scopes": STRSET,
          "purposes": STRSET}
_COUNTERS = ("company_day", "company_week", "company_month", "all_day", "all_week",
             "all_month")
_REQUEST = {"action": STR, "company": STR, "subject": STR, "resource": STR, "field": STR,
            "purpose": STR, "channel": STR, "topic": STR, "time": DATETIME}


def _local_time(ctx: Context) -> time:
    return ctx.local.time()


def _local_date(ctx: Context) -> date:
    return ctx.local.date()


#: Where each fact lives on a decision's `Context`, as an attribute path.
_FACT_PATHS: dict[str, tuple[Type, str]] = {
    **{f"request.{n}": (t, f"request.{n}") for n, t in _REQUEST.items()},
    **{f"grant.{n}": (t, f"facts.grant.{n}") for n, t in _GRANT.items()},
    **{f"preferences.{n}": (t, f"facts.preferences.{n}") for n, t in _PREFERENCES.items()},
    **{f"global.{n}": (t, f"facts.global_preferences.{n}")
       for n, t in _PREFERENCES.items() if n != "opted_in"},
    **{f"counters.{n}": (INT, f"facts.counters.{n}") for n in _COUNTERS},
    "now": (DATETIME, "request.time"),
    "time_zone": (STR, "facts.time_zone"),
}
#: Every fact the language knows: its type, and how to read it from a decision's context
#: (reason templates call these; `attrgetter` with a dotted path runs in C).
FACTS: dict[str, tuple[Type, Getter]] = {
    **{name: (kind, operator.attrgetter(path)) for name, (kind, path) in _FACT_PATHS.items()},
    "local_time": (TIME, _local_time),
    "local_date": (DATE, _local_date),
}
#: The Python source that reads a fact in a compiled condition (the rest are calls).
FACT_CODE: dict[str, str] = {name: f"ctx.{path}" for name, (_, path) in _FACT_PATHS.items()}
#: Short names a reason template may use for the request: `{company}` for `{request.company}`.
TEMPLATE_ALIASES = {name.removeprefix("request."): name for name in FACTS
                    if name.startswith("request.")}

# `global` is a keyword Python's parser refuses as a name; it is swapped for a name of the same
# length (so column numbers stay right) that policies cannot write, as `_` names are refused.
_GLOBAL_ALIAS = "_glob_"


def in_quiet_hours(now: time, start: time | None, end: time | None) -> bool:
    """Whether a local time falls in a quiet window; windows may wrap midnight (22:00–07:00)."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end


def next_local(ctx: Context, at: time) -> datetime:
    """The next moment (UTC) the customer's wall clock shows `at`, correct across DST changes.

    Wall-clock arithmetic on purpose: 07:00 stays 07:00 local on the day the clocks change. A
    time the clocks skip (02:30 on a spring-forward night) maps to just after the gap.
    """
    return _NEXT_LOCAL[(ctx.request.time, ctx.facts.time_zone, at)]


def _next_wall_clock(key: tuple[datetime, str, time]) -> datetime:
    moment, zone, at = key
    local = _LOCAL_TIMES[(moment, zone)]
    # Same tzinfo on both sides: Python compares and adds these as wall-clock times.
    candidate = datetime.combine(local.date(), at, local.tzinfo)
    if candidate <= local:
        candidate += _ONE_DAY
    return candidate.astimezone(UTC)


_ONE_DAY = timedelta(days=1)
#: (moment, zone name, wall-clock time) -> `next_local`: every push in quiet hours asks it, a
#: campaign at one moment for a few hundred zones.
_NEXT_LOCAL: Remembered[tuple[datetime, str, time], datetime] = Remembered(_next_wall_clock)


_GRANTED_SCOPES = operator.attrgetter("facts.grant.scopes")


def _is_none(value: object) -> bool:
    return value is None


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _hours(n: int) -> timedelta:
    return timedelta(hours=n)


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


#: A parameter that takes any value that may be empty (for `is_none`).
ANY_OPTIONAL = Type(Kind.NONE, optional=True)


@dataclass(frozen=True, slots=True)
class Function:
    """A function policies may call: parameter and result types, the implementation.

    `proves` lists the arguments a true result shows to be present; `proves_if_false` those a
    false result shows present (see the module docstring on empty values).
    """

    params: tuple[Type, ...]
    result: Type
    impl: Callable[..., Any]
    needs_context: bool = False
    proves: tuple[int, ...] = ()
    proves_if_false: tuple[int, ...] = ()


FUNCTIONS: dict[str, Function] = {
    "days": Function((INT,), DURATION, _days),
    "hours": Function((INT,), DURATION, _hours),
    "minutes": Function((INT,), DURATION, _minutes),
    "in_quiet_hours": Function((TIME, OPT_TIME, OPT_TIME), BOOL, in_quiet_hours,
                               proves=(1, 2)),
    "next_local": Function((TIME,), DATETIME, next_local, needs_context=True),
    "is_none": Function((ANY_OPTIONAL,), BOOL, _is_none, proves_if_false=(0,)),
    "has_scope": Function((STR,), BOOL, _GRANTED_SCOPES, needs_context=True),
    "len": Function((STRSET,), INT, len),
}


class Typed(NamedTuple):
    """A checked node: its Python source over `ctx`, its type, and which facts it proves present.

    `if_true`/`if_false` are the optional facts known to be present when a boolean node is
    true or false; `fact` names the fact a node reads (for messages, and for what it proves).
    """

    code: str
    type: Type
    if_true: frozenset[str] = frozenset()
    if_false: frozenset[str] = frozenset()
    fact: str | None = None


_COMPARE: dict[type[ast.cmpop], str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}
#: (operator, left kind, right kind) -> result type: the arithmetic the language allows.
_ARITHMETIC: dict[tuple[type[ast.operator], Kind, Kind], Type] = {
    (ast.Add, Kind.INT, Kind.INT): INT, (ast.Sub, Kind.INT, Kind.INT): INT,
    (ast.Add, Kind.STR, Kind.STR): STR,
    (ast.Add, Kind.DURATION, Kind.DURATION): DURATION,
    (ast.Sub, Kind.DURATION, Kind.DURATION): DURATION,
    (ast.Add, Kind.DATETIME, Kind.DURATION): DATETIME,
    (ast.Sub, Kind.DATETIME, Kind.DURATION): DATETIME,
    (ast.Add, Kind.DATE, Kind.DURATION): DATE, (ast.Sub, Kind.DATE, Kind.DURATION): DATE,
    (ast.Sub, Kind.DATETIME, Kind.DATETIME): DURATION,
}
_ORDERABLE = (Kind.INT, Kind.DATETIME, Kind.DATE, Kind.TIME, Kind.DURATION)
_DISALLOWED = {"Subscript": "indexing", "Lambda": "lambda", "ListComp": "a comprehension",
               "GeneratorExp": "a generator", "DictComp": "a comprehension",
               "SetComp": "a comprehension", "Dict": "a dict", "IfExp": "if/else",
               "NamedExpr": "`:=`", "Await": "await", "Starred": "*", "JoinedStr": "an f-string",
               "Slice": "slicing"}


def _line(node: ast.expr) -> int:
    """The node's line within the policy text (the parser saw it after an opening bracket)."""
    return max(node.lineno - 2, 0)


def _show(node: ast.AST) -> str:
    return ast.unparse(node).replace(_GLOBAL_ALIAS, "global")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return "global" if node.id == _GLOBAL_ALIAS else node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Compiler:
    """Walks one expression's tree; `present` holds the optional facts proven present here.

    Each node becomes Python source over `ctx`. Only the compiler writes that source: fact
    paths come from `FACT_CODE`, operators from fixed tables, and every literal and function
    is bound to a name of its own in `names` (never spelled out), so no text from a policy
    file reaches Python's compiler.
    """

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        """A name in the compiled function's namespace that holds `value`."""
        name = f"_v{len(self.names)}"
        self.names[name] = value
        return name

    def compile(self, node: ast.expr, present: frozenset[str]) -> Typed:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            what = _DISALLOWED.get(type(node).__name__, type(node).__name__)
            raise ExpressionError(f"{what} is not allowed in a policy expression",
                                  _line(node))
        result: Typed = method(node, present)
        return result

    def expect(self, node: ast.expr, wanted: Type, present: frozenset[str]) -> Typed:
        typed = self.compile(node, present)
        if not _fits(typed.type, wanted):
            hint = _empty_hint(typed) if typed.type.optional and not wanted.optional else ""
            raise ExpressionError(f"expected {wanted}, got {typed.type} in {_show(node)!r}"
                                  f"{hint}", _line(node))
        return typed

    def _Constant(self, node: ast.Constant, _present: frozenset[str]) -> Typed:
        value = node.value
        kind = {bool: Kind.BOOL, int: Kind.INT, str: Kind.STR, type(None): Kind.NONE}.get(
            type(value))
        if kind is None:
            raise ExpressionError(f"the literal {value!r} is not allowed", _line(node))
        code = "None" if value is None else self.bind(value)
        return Typed(code, Type(kind, kind == Kind.NONE))

    def _Name(self, node: ast.Name, present: frozenset[str]) -> Typed:
        return self._fact(node, present)

    def _Attribute(self, node: ast.Attribute, present: frozenset[str]) -> Typed:
        return self._fact(node, present)

    def _fact(self, node: ast.expr, present: frozenset[str]) -> Typed:
        name = _dotted(node)
        if name is None:
            raise ExpressionError(f"{_show(node)!r}: attributes are only allowed on fact names "
                                  "(request.*, grant.*, preferences.*, global.*, counters.*)",
                                  _line(node))
        if name not in FACTS:
            raise ExpressionError(f"unknown fact {name!r}", _line(node))
        kind = FACTS[name][0]
        if kind.optional and name in present:
            kind = Type(kind.kind)
        code = FACT_CODE.get(name) or f"{self.bind(FACTS[name][1])}(ctx)"
        return Typed(code, kind, fact=name)

    def _List(self, node: ast.List | ast.Tuple | ast.Set, _present: frozenset[str]) -> Typed:
        values = []
        for element in node.elts:
            if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
                raise ExpressionError("a list holds only string literals", _line(node))
            values.append(element.value)
        frozen = frozenset(values)
        return Typed(self.bind(frozen), STRSET)

    _Tuple = _List
    _Set = _List

    def _BoolOp(self, node: ast.BoolOp, present: frozenset[str]) -> Typed:
        conjunction = isinstance(node.op, ast.And)
        parts: list[str] = []
        proven = frozenset[str]()
        for value in node.values:
            typed = self.expect(value, BOOL, present | proven)
            parts.append(typed.code)
            # Later operands run only when earlier ones were true (and) or false (or).
            proven |= typed.if_true if conjunction else typed.if_false
        if conjunction:
            return Typed(f"({' and '.join(parts)})", BOOL, if_true=proven)
        return Typed(f"({' or '.join(parts)})", BOOL, if_false=proven)

    def _UnaryOp(self, node: ast.UnaryOp, present: frozenset[str]) -> Typed:
        if isinstance(node.op, ast.Not):
            inner = self.expect(node.operand, BOOL, present)
            return Typed(f"(not {inner.code})", BOOL, if_true=inner.if_false,
                         if_false=inner.if_true)
        if isinstance(node.op, ast.USub):
            number = self.expect(node.operand, INT, present).code
            return Typed(f"(-{number})", INT)
        raise ExpressionError("only `not` and unary minus are allowed", _line(node))

    def _BinOp(self, node: ast.BinOp, present: frozenset[str]) -> Typed:
        left, right = self.compile(node.left, present), self.compile(node.right, present)
        line = _line(node)
        for side in (left, right):
            if side.type.optional:
                raise ExpressionError(f"arithmetic on a value that may be empty"
                                      f"{_empty_hint(side)}", line)
        if not isinstance(node.op, ast.Add | ast.Sub):
            raise ExpressionError("only + and - are allowed", line)
        sign = "+" if isinstance(node.op, ast.Add) else "-"
        result = _ARITHMETIC.get((type(node.op), left.type.kind, right.type.kind))
        if result is None:
            raise ExpressionError(f"cannot combine {left.type} and {right.type} in "
                                  f"{_show(node)!r}", line)
        return Typed(f"({left.code} {sign} {right.code})", result)

    def _Compare(self, node: ast.Compare, present: frozenset[str]) -> Typed:
        checks: list[Typed] = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            checks.append(self._comparison(left_node, op, right_node, present))
            left_node = right_node
        if len(checks) == 1:
            return checks[0]
        return Typed(f"({' and '.join(c.code for c in checks)})", BOOL,
                     if_true=frozenset().union(*(c.if_true for c in checks)))

    def _comparison(self, left_node: ast.expr, op: ast.cmpop, right_node: ast.expr,
                    present: frozenset[str]) -> Typed:
        left, right = self.compile(left_node, present), self.compile(right_node, present)
        line = _line(left_node)
        lc, rc = left.code, right.code
        if isinstance(op, ast.Is | ast.IsNot):
            if right.type.kind != Kind.NONE:
                raise ExpressionError("`is` only compares with None", line)
            if not left.type.optional:
                raise ExpressionError(f"{_show(left_node)!r} is a {left.type} and never "
                                      "None", line)
            shown = frozenset({left.fact}) if left.fact else frozenset()
            if isinstance(op, ast.Is):
                return Typed(f"({lc} is None)", BOOL, if_false=shown)
            return Typed(f"({lc} is not None)", BOOL, if_true=shown)
        if left.type.kind == Kind.NONE or right.type.kind == Kind.NONE:
            raise ExpressionError("compare with None using `is None` or `is not None`", line)
        for side in (left, right):
            if side.type.optional:
                raise ExpressionError(f"cannot compare a value that may be empty"
                                      f"{_empty_hint(side)}", line)
        if isinstance(op, ast.In | ast.NotIn):
            if left.type.kind != Kind.STR or right.type.kind != Kind.STRSET:
                raise ExpressionError(f"`in` needs a str on the left and a set of strings on "
                                      f"the right, not {left.type} and {right.type}", line)
            word = "in" if isinstance(op, ast.In) else "not in"
            return Typed(f"({lc} {word} {rc})", BOOL)
        if left.type.kind != right.type.kind:
            raise ExpressionError(f"cannot compare {left.type} with {right.type} in "
                                  f"{_show(left_node)} … {_show(right_node)}", line)
        if type(op) not in (ast.Eq, ast.NotEq) and left.type.kind not in _ORDERABLE:
            raise ExpressionError(f"{left.type} values have no order", line)
        return Typed(f"({lc} {_COMPARE[type(op)]} {rc})", BOOL)

    def _Call(self, node: ast.Call, present: frozenset[str]) -> Typed:
        line = _line(node)
        known = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(f"calling {_show(node.func)!r} is not allowed; "
                                  f"functions: {known}", line)
        name = node.func.id
        if name not in FUNCTIONS:
            raise ExpressionError(f"unknown function {name!r}; functions: {known}", line)
        if node.keywords:
            raise ExpressionError(f"{name}() takes positional arguments only", line)
        function = FUNCTIONS[name]
        if len(node.args) != len(function.params):
            raise ExpressionError(f"{name}() takes {len(function.params)} argument(s), "
                                  f"not {len(node.args)}", line)
        args: list[Typed] = []
        for position, (arg, wanted) in enumerate(zip(node.args, function.params, strict=True),
                                                 start=1):
            typed = self.compile(arg, present)
            if wanted is ANY_OPTIONAL:
                if not typed.type.optional or typed.type.kind == Kind.NONE:
                    raise ExpressionError(f"argument {position} of {name}() must be a fact "
                                          f"that may be empty, not {typed.type}", line)
            elif not _fits(typed.type, wanted):
                raise ExpressionError(f"argument {position} of {name}() must be {wanted}, "
                                      f"not {typed.type}{_empty_hint(typed)}", line)
            args.append(typed)

        def facts_at(indexes: tuple[int, ...]) -> frozenset[str]:
            return frozenset(f for i in indexes if (f := args[i].fact) is not None)

        code = self._call(function, [a.code for a in args])
        return Typed(code, function.result, if_true=facts_at(function.proves),
                     if_false=facts_at(function.proves_if_false))

    def _call(self, function: Function, args: list[str]) -> str:
        if function.impl is _GRANTED_SCOPES:  # has_scope(s) is `s in grant.scopes`
            return f"({args[0]} in {FACT_CODE['grant.scopes']})"
        impl = self.bind(function.impl)
        if function.needs_context:
            return f"{impl}(ctx, {', '.join(args)})"
        if len(args) == 3 and function.proves == (1, 2) and function.result == BOOL:
            # A true result proves the last two present, so without either it is false: decided
            # without evaluating the first (`in_quiet_hours` reads the customer's clock, and so
            # its time zone, only for a customer who set quiet hours).
            first, second, third = args
            return (f"({second} is not None and {third} is not None"
                    f" and {impl}({first}, {second}, {third}))")
        return f"{impl}({', '.join(args)})"


def _fits(actual: Type, wanted: Type) -> bool:
    if actual.kind == Kind.NONE:
        return wanted.optional
    return actual.kind == wanted.kind and (wanted.optional or not actual.optional)


def _empty_hint(typed: Typed) -> str:
    if not typed.type.optional or typed.fact is None:
        return ""
    return (f": {typed.fact} may be empty; write `{typed.fact} is not None and …` "
            f"(or `{typed.fact} is None or …`) first")


def _parse(text: str) -> ast.expr:
    """Python's parser over the text, after checking names and brackets token by token.

    The text is parsed inside brackets of its own, so a long condition may span lines (a YAML
    block scalar) the way it would inside brackets in Python; brackets in the text must
    balance, so the wrapping cannot join anything that was written apart.
    """
    source = text.strip()
    lines = source.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        tokens = []  # ast.parse below reports the syntax error with its line
    depth = 0
    for token in tokens:
        row, column = token.start
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
            if depth < 0:
                raise ExpressionError(f"unbalanced {token.string!r}", row - 1)
        elif token.type == tokenize.NAME and token.string.startswith("_"):
            raise ExpressionError(f"names starting with '_' ({token.string}) are not allowed",
                                  row - 1)
        elif token.type == tokenize.NAME and token.string == "global":
            line = lines[row - 1]
            lines[row - 1] = line[:column] + _GLOBAL_ALIAS + line[column + len("global"):]
    try:
        return ast.parse("(\n" + "".join(lines) + "\n)", mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}",
                              max((exc.lineno or 2) - 2, 0)) from None


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression and the optional facts it proves present when it is true."""

    getter: Getter
    proves: frozenset[str]


def compile_expression(text: str, wanted: Type,
                       present: frozenset[str] = frozenset()) -> Expression:
    """Parse, check and compile one expression that must produce a `wanted` value.

    Args:
        text: The expression as written in the policy file.
        wanted: The type the expression must have (bool for conditions).
        present: Optional facts already known to be present where this expression runs.

    Raises:
        ExpressionError: With the problem and its line within `text`.
    """
    compiler = _Compiler()
    typed = compiler.expect(_parse(text), wanted, present)
    getter = eval(f"lambda ctx: {typed.code}", {"__builtins__": {}, **compiler.names})  # noqa: S307 (see _Compiler)
    return Expression(getter, typed.if_true | present)
