"""The policy expression language: a small, typed, side-effect-free subset of Python syntax.

Python's own parser reads the text (`ast.parse(mode="eval")`); nothing is ever evaluated by
Python. Each node is checked against a whitelist and the schema of known facts, type-checked,
and compiled once into a closure over a decision context. What is allowed:

- known fact names (`grant.scopes`, `preferences.cap_day`, `now`, `local_time`, …);
- literals: numbers, strings, True/False/None, lists of strings;
- `and`, `or`, `not`; comparisons `== != < <= > >=`, `in`, `not in`, `is None`, `is not None`;
- `+`/`-` on numbers, on a time and a duration, and `+` to join strings;
- a fixed set of functions (FUNCTIONS below).

An optional fact (one that may be empty, like `grant.expires_at`) compared with `<`, `>`, … is
false when empty, as in SQL; `is None` asks about emptiness directly.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cmr_vault.policy.facts import DecisionRequest, Facts


class Kind(StrEnum):
    """The value types of the language."""

    BOOL = "bool"
    INT = "int"
    STR = "str"
    DATETIME = "datetime"
    TIME = "time"
    DURATION = "duration"
    STRSET = "set of strings"
    NONE = "None"


@dataclass(frozen=True)
class Type:
    """A kind, and whether the value may be empty (None)."""

    kind: Kind
    optional: bool = False

    def __str__(self) -> str:
        return f"optional {self.kind}" if self.optional else str(self.kind)


class ExpressionError(ValueError):
    """An expression that cannot be compiled; `offset` is its line within the expression."""

    def __init__(self, message: str, line_offset: int = 0) -> None:
        super().__init__(message)
        self.line_offset = line_offset


class Context:
    """One decision's inputs, with the customer's local time worked out only when asked."""

    __slots__ = ("_local", "facts", "request")

    def __init__(self, request: DecisionRequest, facts: Facts) -> None:
        self.request = request
        self.facts = facts
        self._local: datetime | None = None

    @property
    def local(self) -> datetime:
        """The request time on the customer's wall clock (UTC if the zone is unknown)."""
        if self._local is None:
            try:
                zone = ZoneInfo(self.facts.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                zone = ZoneInfo("UTC")
            self._local = self.request.time.astimezone(zone)
        return self._local


Getter = Callable[[Context], Any]
BOOL, INT, STR = Type(Kind.BOOL), Type(Kind.INT), Type(Kind.STR)
DATETIME, TIME, STRSET = Type(Kind.DATETIME), Type(Kind.TIME), Type(Kind.STRSET)
DURATION = Type(Kind.DURATION)
OPT_DATETIME, OPT_TIME, OPT_INT = (Type(Kind.DATETIME, True), Type(Kind.TIME, True),
                                   Type(Kind.INT, True))


def _preference_facts(prefix: str, attr: str) -> dict[str, tuple[Type, Getter]]:
    def get(name: str) -> Getter:
        def getter(ctx: Context) -> Any:
            return getattr(getattr(ctx.facts, attr), name)
        return getter

    kinds = {"opted_in": BOOL, "confirmed_at": OPT_DATETIME, "topics": STRSET,
             "cap_day": OPT_INT, "cap_week": OPT_INT, "cap_month": OPT_INT,
             "quiet_start": OPT_TIME, "quiet_end": OPT_TIME, "paused_until": OPT_DATETIME}
    return {f"{prefix}.{name}": (kind, get(name)) for name, kind in kinds.items()}


def _group(prefix: str, attr: str, kinds: dict[str, Type]) -> dict[str, tuple[Type, Getter]]:
    def get(name: str) -> Getter:
        def getter(ctx: Context) -> Any:
            return getattr(getattr(ctx, attr), name)
        return getter

    return {f"{prefix}.{name}": (kind, get(name)) for name, kind in kinds.items()}


def _grant_get(name: str) -> Getter:
    def getter(ctx: Context) -> Any:
        return getattr(ctx.facts.grant, name)
    return getter


def _counter_get(name: str) -> Getter:
    def getter(ctx: Context) -> Any:
        return getattr(ctx.facts.counters, name)
    return getter


#: Every fact the language knows: its type, and how to read it from a decision's context.
FACTS: dict[str, tuple[Type, Getter]] = {
    **_group("request", "request", {
        "action": STR, "company": STR, "subject": STR, "resource": STR, "field": STR,
        "purpose": STR, "channel": STR, "topic": STR, "time": DATETIME}),
    **{f"grant.{n}": (t, _grant_get(n)) for n, t in {
        "exists": BOOL, "status": STR, "expires_at": OPT_DATETIME, "scopes": STRSET,
        "purposes": STRSET}.items()},
    **_preference_facts("preferences", "preferences"),
    **_preference_facts("all_companies", "global_preferences"),
    **{f"counters.{n}": (INT, _counter_get(n)) for n in (
        "company_day", "company_week", "company_month", "all_day", "all_week", "all_month")},
    "now": (DATETIME, lambda ctx: ctx.request.time),
    "local_time": (TIME, lambda ctx: ctx.local.time().replace(tzinfo=None)),
    "time_zone": (STR, lambda ctx: ctx.facts.time_zone),
}
#: Short names a reason template may use for the request.
TEMPLATE_ALIASES = {name.removeprefix("request."): name for name in FACTS
                    if name.startswith("request.")}


def in_quiet_hours(now: time, start: time | None, end: time | None) -> bool:
    """Whether a local time falls in a quiet window; windows may wrap midnight (22:00–07:00)."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end


def next_local(ctx: Context, at: time | None) -> datetime | None:
    """The next moment (UTC) the customer's wall clock shows `at`, DST-correct."""
    if at is None:
        return None
    local = ctx.local
    candidate = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + timedelta(days=1)).replace(hour=at.hour, minute=at.minute,
                                                        second=0, microsecond=0)
    # Re-attach the zone so a day across a DST change gets that day's offset.
    zone = local.tzinfo
    naive = candidate.replace(tzinfo=None)
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class Function:
    """A function policies may call: argument types, result type, implementation."""

    params: tuple[Type, ...]
    result: Type
    impl: Callable[..., Any]
    needs_context: bool = False


FUNCTIONS: dict[str, Function] = {
    "days": Function((INT,), DURATION, lambda n: timedelta(days=n)),
    "hours": Function((INT,), DURATION, lambda n: timedelta(hours=n)),
    "minutes": Function((INT,), DURATION, lambda n: timedelta(minutes=n)),
    "in_quiet_hours": Function((TIME, OPT_TIME, OPT_TIME), BOOL, in_quiet_hours),
    "next_local": Function((OPT_TIME,), OPT_DATETIME, next_local, needs_context=True),
    "latest": Function((OPT_DATETIME, OPT_DATETIME), OPT_DATETIME, _latest),
    "len": Function((STRSET,), INT, len),
}


def _fits(actual: Type, wanted: Type) -> bool:
    if actual.kind == Kind.NONE:
        return wanted.optional
    return actual.kind == wanted.kind and (wanted.optional or not actual.optional)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


Compiled = tuple[Getter, Type]
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
ORDERABLE = (Kind.INT, Kind.DATETIME, Kind.TIME, Kind.DURATION)


class _Compiler:
    def compile(self, node: ast.expr) -> Compiled:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExpressionError(f"{_describe(node)} is not allowed in a policy expression",
                                  node.lineno - 1)
        result: Compiled = method(node)
        return result

    def _Constant(self, node: ast.Constant) -> Compiled:
        value = node.value
        kind = {bool: Kind.BOOL, int: Kind.INT, str: Kind.STR, type(None): Kind.NONE}.get(
            type(value))
        if kind is None:
            raise ExpressionError(f"the literal {value!r} is not allowed", node.lineno - 1)
        return (lambda _ctx: value), Type(kind, kind == Kind.NONE)

    def _Name(self, node: ast.Name) -> Compiled:
        return self._fact(node)

    def _Attribute(self, node: ast.Attribute) -> Compiled:
        return self._fact(node)

    def _fact(self, node: ast.expr) -> Compiled:
        name = _dotted(node)
        if name is None or name not in FACTS:
            raise ExpressionError(f"unknown fact {name or _describe(node)!r}", node.lineno - 1)
        kind, getter = FACTS[name]
        return getter, kind

    def _List(self, node: ast.List | ast.Tuple | ast.Set) -> Compiled:
        values = []
        for element in node.elts:
            if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
                raise ExpressionError("a list holds only string literals", node.lineno - 1)
            values.append(element.value)
        frozen = frozenset(values)
        return (lambda _ctx: frozen), STRSET

    _Tuple = _List
    _Set = _List

    def _BoolOp(self, node: ast.BoolOp) -> Compiled:
        parts = [self._expect(v, BOOL) for v in node.values]
        if isinstance(node.op, ast.And):
            return (lambda ctx: all(p(ctx) for p in parts)), BOOL
        return (lambda ctx: any(p(ctx) for p in parts)), BOOL

    def _UnaryOp(self, node: ast.UnaryOp) -> Compiled:
        if isinstance(node.op, ast.Not):
            inner = self._expect(node.operand, BOOL)
            return (lambda ctx: not inner(ctx)), BOOL
        if isinstance(node.op, ast.USub):
            number = self._expect(node.operand, INT)
            return (lambda ctx: -number(ctx)), INT
        raise ExpressionError("only `not` and unary minus are allowed", node.lineno - 1)

    def _BinOp(self, node: ast.BinOp) -> Compiled:
        left, lt = self.compile(node.left)
        right, rt = self.compile(node.right)
        line = node.lineno - 1
        if lt.optional or rt.optional:
            raise ExpressionError(f"arithmetic on an optional value ({lt}, {rt}); use "
                                  "latest() or check `is None` first", line)
        if isinstance(node.op, ast.Add):
            if lt.kind == rt.kind and lt.kind in (Kind.INT, Kind.STR, Kind.DURATION):
                return (lambda ctx: left(ctx) + right(ctx)), lt
            if lt.kind in (Kind.DATETIME,) and rt.kind == Kind.DURATION:
                return (lambda ctx: left(ctx) + right(ctx)), DATETIME
        elif isinstance(node.op, ast.Sub):
            if lt.kind == rt.kind and lt.kind in (Kind.INT, Kind.DURATION):
                return (lambda ctx: left(ctx) - right(ctx)), lt
            if lt.kind == Kind.DATETIME and rt.kind == Kind.DURATION:
                return (lambda ctx: left(ctx) - right(ctx)), DATETIME
            if lt.kind == rt.kind == Kind.DATETIME:
                return (lambda ctx: left(ctx) - right(ctx)), DURATION
        else:
            raise ExpressionError("only + and - are allowed", line)
        raise ExpressionError(f"cannot combine {lt} and {rt} with that operator", line)

    def _Compare(self, node: ast.Compare) -> Compiled:
        checks = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            checks.append(self._comparison(left_node, op, right_node))
            left_node = right_node
        if len(checks) == 1:
            return checks[0], BOOL
        return (lambda ctx: all(c(ctx) for c in checks)), BOOL

    def _comparison(self, left_node: ast.expr, op: ast.cmpop, right_node: ast.expr) -> Getter:
        left, lt = self.compile(left_node)
        right, rt = self.compile(right_node)
        line = left_node.lineno - 1
        if isinstance(op, ast.Is | ast.IsNot):
            if rt.kind != Kind.NONE:
                raise ExpressionError("`is` only compares with None", line)
            if not lt.optional:
                raise ExpressionError(f"a {lt} value is never None", line)
            if isinstance(op, ast.Is):
                return lambda ctx: left(ctx) is None
            return lambda ctx: left(ctx) is not None
        if isinstance(op, ast.In | ast.NotIn):
            if lt.kind != Kind.STR or rt.kind != Kind.STRSET:
                raise ExpressionError(f"`in` needs a string on the left and a set of "
                                      f"strings on the right, not {lt} and {rt}", line)
            if isinstance(op, ast.In):
                return lambda ctx: left(ctx) in right(ctx)
            return lambda ctx: left(ctx) not in right(ctx)
        if lt.kind != rt.kind:
            raise ExpressionError(f"cannot compare {lt} with {rt}", line)
        if isinstance(op, ORDERING) and lt.kind not in ORDERABLE:
            raise ExpressionError(f"{lt} values have no order", line)
        compare = _OPERATORS[type(op)]
        if lt.optional or rt.optional:
            def guarded(ctx: Context) -> bool:
                a, b = left(ctx), right(ctx)
                return a is not None and b is not None and compare(a, b)
            return guarded
        return lambda ctx: compare(left(ctx), right(ctx))

    def _Call(self, node: ast.Call) -> Compiled:
        line = node.lineno - 1
        known = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(f"calling {ast.unparse(node.func)!r} is not allowed; "
                                  f"functions: {known}", line)
        if node.func.id not in FUNCTIONS:
            raise ExpressionError(f"unknown function {node.func.id!r}; functions: {known}",
                                  line)
        if node.keywords:
            raise ExpressionError("functions take positional arguments only", line)
        function = FUNCTIONS[node.func.id]
        if len(node.args) != len(function.params):
            raise ExpressionError(f"{node.func.id}() takes {len(function.params)} "
                                  f"argument(s), not {len(node.args)}", line)
        args = []
        for position, (arg, wanted) in enumerate(zip(node.args, function.params, strict=True),
                                                 start=1):
            getter, actual = self.compile(arg)
            if not _fits(actual, wanted):
                raise ExpressionError(f"argument {position} of {node.func.id}() must be "
                                      f"{wanted}, not {actual}", line)
            args.append(getter)
        impl = function.impl
        if function.needs_context:
            return (lambda ctx: impl(ctx, *(a(ctx) for a in args))), function.result
        return (lambda ctx: impl(*(a(ctx) for a in args))), function.result

    def _expect(self, node: ast.expr, wanted: Type) -> Getter:
        getter, actual = self.compile(node)
        if not _fits(actual, wanted):
            raise ExpressionError(f"expected {wanted}, got {actual}", node.lineno - 1)
        return getter


_OPERATORS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}


def _describe(node: ast.AST) -> str:
    return {"Subscript": "indexing", "Lambda": "lambda", "ListComp": "a comprehension",
            "GeneratorExp": "a generator", "DictComp": "a comprehension",
            "SetComp": "a comprehension", "Dict": "a dict", "IfExp": "if/else",
            "NamedExpr": "`:=`", "Await": "await", "Starred": "*"}.get(
        type(node).__name__, type(node).__name__)


def compile_expression(text: str, wanted: Type) -> Getter:
    """Parse, check and compile one expression that must produce a `wanted` value."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}",
                              (exc.lineno or 1) - 1) from None
    return _Compiler()._expect(tree.body, wanted)


def now_utc() -> datetime:
    """The current time, aware, in UTC (for tools that build requests)."""
    return datetime.now(UTC)
