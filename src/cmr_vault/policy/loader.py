"""Reading policy files: YAML in, a compiled PolicySet out, or every problem with file:line.

The YAML is composed into nodes (not loaded straight to Python objects) so each value keeps its
line, and every error names the file and line an operator must fix. All problems in all files
are collected before failing, so one `policy check` run lists everything.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cmr_vault.policy.engine import (
    ACTIONS,
    CHANNELS,
    NO_REASON,
    CompiledRule,
    Effect,
    PolicySet,
    Template,
    value_format,
)
from cmr_vault.policy.expressions import (
    BOOL,
    DATETIME,
    FACTS,
    TEMPLATE_ALIASES,
    Expression,
    ExpressionError,
    Getter,
    Type,
    compile_expression,
)
from cmr_vault.policy.lifecycle import DEFAULT_REMIND_DAYS, MAX_DAYS, Lifecycle

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
RULE_KEYS = {"id", "description", "applies_to", "when", "effect", "until", "obligation",
             "reason"}
APPLIES_KEYS = {"action", "channel", "purpose", "topic"}


class PolicyError(ValueError):
    """The policy set cannot be loaded; `problems` are "path:line: message" strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class _Problems:
    path: str
    found: list[str]

    def add(self, node: Node | None, message: str, offset: int = 0) -> None:
        line = (node.start_mark.line + 1 + offset) if node is not None else 1
        self.found.append(f"{self.path}:{line}: {message}")


def _mapping(node: Node) -> dict[str, tuple[Node, Node]]:
    return {k.value: (k, v) for k, v in node.value} if isinstance(node, MappingNode) else {}


def _scalar(node: Node) -> str | None:
    return str(node.value) if isinstance(node, ScalarNode) else None


def _strings(node: Node) -> list[str] | None:
    if isinstance(node, ScalarNode):
        return [str(node.value)]
    if isinstance(node, SequenceNode) and all(isinstance(n, ScalarNode) for n in node.value):
        return [str(n.value) for n in node.value]
    return None


def _expression_line_offset(node: Node) -> int:
    # Block scalars (`when: |`) start their text on the line after the key.
    return 1 if isinstance(node, ScalarNode) and node.style in ("|", ">") else 0


def compile_template(text: str, present: frozenset[str] = frozenset()) -> Template:
    """Compile a reason template over request fields and facts; unknown names raise.

    `present` are the optional facts the rule's condition proved present: a reason is only
    rendered when the condition held, so those are shown without the check for None.
    """
    pattern: list[str] = []
    values: list[Getter] = []
    for literal, name, spec, conversion in string.Formatter().parse(text):
        pattern.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
        fact = TEMPLATE_ALIASES.get(name, name)
        if fact not in FACTS:
            raise ValueError(f"reason names unknown fact {{{name}}}")
        kind, getter = FACTS[fact]
        if fact in present:
            kind = Type(kind.kind)
        pattern.append("{}")
        show = value_format(kind)
        values.append(getter if show is None else _formatted(getter, show))
    return Template("".join(pattern), tuple(values))


def _formatted(getter: Getter, show: Callable[[Any], str]) -> Getter:
    return lambda ctx: show(getter(ctx))


def _applies_to(rule: Node, node: Node | None, problems: _Problems
                ) -> dict[str, frozenset[str] | None]:
    result: dict[str, frozenset[str] | None] = dict.fromkeys(APPLIES_KEYS)
    if node is None:
        problems.add(rule, "a rule needs applies_to (at least its action)")
        return result
    fields = _mapping(node)
    if not isinstance(node, MappingNode):
        problems.add(node, "applies_to is a mapping of action, channel, purpose, topic")
        return result
    for key, (key_node, value_node) in fields.items():
        if key not in APPLIES_KEYS:
            problems.add(key_node, f"unknown key {key!r} in applies_to; known: "
                                   f"{', '.join(sorted(APPLIES_KEYS))}")
            continue
        values = _strings(value_node)
        if values is None:
            problems.add(value_node, f"applies_to.{key} is a string or a list of strings")
            continue
        allowed = {"action": ACTIONS, "channel": CHANNELS}.get(key)
        wrong = [v for v in values if allowed is not None and v not in allowed]
        if wrong:
            problems.add(value_node, f"applies_to.{key} {', '.join(wrong)!s} is not one of "
                                     f"{', '.join(allowed or ())}")
        result[key] = frozenset(values)
    if result["action"] is None:
        problems.add(node, "applies_to needs an action (read or push)")
    return result


def _compile_rule(node: Node, problems: _Problems) -> CompiledRule | None:
    fields = _mapping(node)
    if not isinstance(node, MappingNode):
        problems.add(node, "each rule is a mapping")
        return None
    before = len(problems.found)
    for key, (key_node, _) in fields.items():
        if key not in RULE_KEYS:
            problems.add(key_node, f"unknown key {key!r}; a rule has "
                                   f"{', '.join(sorted(RULE_KEYS))}")
    for required in ("id", "effect"):
        if required not in fields:
            problems.add(node, f"a rule needs {required!r}")
    rule_id = _scalar(fields["id"][1]) if "id" in fields else ""
    if rule_id is not None and rule_id and not RULE_ID.match(rule_id):
        problems.add(fields["id"][1], f"rule id {rule_id!r} must be lower-case letters, "
                                      "digits, '.', '_' or '-'")
    effect_text = _scalar(fields["effect"][1]) if "effect" in fields else None
    effect = None
    if effect_text is not None:
        try:
            effect = Effect(effect_text)
        except ValueError:
            problems.add(fields["effect"][1], f"effect {effect_text!r} is not one of "
                                              f"{', '.join(e.value for e in Effect)}")
    applies = _applies_to(node, fields.get("applies_to", (None, None))[1], problems)
    when = _compile_part(fields, "when", BOOL, frozenset(), problems)
    # `until` runs only when `when` held, so it may use the facts `when` proved present.
    until = _compile_part(fields, "until", DATETIME, when.proves if when else frozenset(),
                          problems)
    if effect is Effect.DEFER and "until" not in fields:
        problems.add(node, "a defer rule needs 'until' (when the request may go)")
    if effect is not Effect.DEFER and "until" in fields:
        problems.add(fields["until"][0], "'until' belongs to defer rules only")
    obligation = _scalar(fields["obligation"][1]) if "obligation" in fields else ""
    if effect is Effect.OBLIGATION and not obligation:
        problems.add(node, "an obligation rule needs 'obligation' (what must be done)")
    reason = NO_REASON
    if "reason" in fields:
        try:
            reason = compile_template(_scalar(fields["reason"][1]) or "",
                                      when.proves if when else frozenset())
        except ValueError as exc:
            problems.add(fields["reason"][1], str(exc))
    elif effect in (Effect.DENY, Effect.DEFER):
        problems.add(node, "a deny or defer rule needs a 'reason' people can read")
    if len(problems.found) > before or effect is None or not rule_id:
        return None
    return CompiledRule(
        id=rule_id,
        description=(_scalar(fields["description"][1]) or "") if "description" in fields else "",
        actions=applies["action"] or frozenset(), channels=applies["channel"],
        purposes=applies["purpose"], topics=applies["topic"],
        when=when.getter if when else None, effect=effect,
        until=until.getter if until else None, obligation=obligation or "", reason=reason,
        source=f"{problems.path}:{node.start_mark.line + 1}",
    )


def _compile_part(fields: dict[str, tuple[Node, Node]], key: str, wanted: Type,
                  present: frozenset[str], problems: _Problems) -> Expression | None:
    if key not in fields:
        return None
    value_node = fields[key][1]
    text = _scalar(value_node)
    if text is None:
        problems.add(value_node, f"'{key}' is an expression string")
        return None
    try:
        return compile_expression(text, wanted, present)
    except ExpressionError as exc:
        offset = _expression_line_offset(value_node) + exc.line_offset
        problems.add(value_node, f"in '{key}': {exc}", offset)
        return None


def _days(node: Node, what: str, problems: _Problems) -> int | None:
    text = _scalar(node)
    if text is None or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        problems.add(node, f"{what} is a whole number of days from 1 to {MAX_DAYS}")
        return None
    return int(text)


def _lifecycle(node: Node, problems: _Problems) -> Lifecycle | None:
    """The `lifecycle:` section: reminder lead time and reaffirmation periods by pattern."""
    fields = _mapping(node)
    if not isinstance(node, MappingNode):
        problems.add(node, "'lifecycle' is a mapping with 'remind_days_before' and 'reaffirm'")
        return None
    before = len(problems.found)
    for key, (key_node, _) in fields.items():
        if key not in ("remind_days_before", "reaffirm"):
            problems.add(key_node, f"unknown key {key!r}; lifecycle has remind_days_before, "
                                   "reaffirm")
    remind = DEFAULT_REMIND_DAYS
    if "remind_days_before" in fields:
        remind = _days(fields["remind_days_before"][1], "remind_days_before",
                       problems) or DEFAULT_REMIND_DAYS
    reaffirm: list[tuple[str, int]] = []
    reaffirm_node = fields.get("reaffirm", (None, None))[1]
    if reaffirm_node is not None and not isinstance(reaffirm_node, MappingNode):
        problems.add(reaffirm_node, "'reaffirm' maps a scope pattern to a number of days")
    for pattern, (pattern_node, days_node) in _mapping(reaffirm_node).items():
        if not re.fullmatch(r"[a-z0-9.:_*?-]+", pattern):
            problems.add(pattern_node, f"{pattern!r} is not a scope pattern (letters, digits, "
                                       "'.', ':', '_', '-', '*', '?')")
        days = _days(days_node, f"reaffirm {pattern!r}", problems)
        if days is not None:
            reaffirm.append((pattern, days))
    if len(problems.found) > before:
        return None
    return Lifecycle(remind_days_before=remind, reaffirm=tuple(reaffirm))


def _load_file(path: Path, shown: str, seen: dict[str, str], problems: list[str],
               lifecycles: list[tuple[str, Lifecycle]]
               ) -> list[CompiledRule]:
    found = _Problems(shown, problems)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        context = (f" ({exc.context} at line {exc.context_mark.line + 1})"
                   if exc.context and exc.context_mark else "")
        problems.append(f"{shown}:{line}: not valid YAML: {exc.problem or exc}{context}")
        return []
    except (UnicodeDecodeError, OSError) as exc:
        problems.append(f"{shown}:1: cannot read: {exc}")
        return []
    top = _mapping(root) if root is not None else {}
    if root is None or not isinstance(root, MappingNode):
        found.add(root, "a policy file is a mapping with 'version: 1' and 'rules'")
        return []
    for key, (key_node, _) in top.items():
        if key not in ("version", "rules", "lifecycle"):
            found.add(key_node, f"unknown top-level key {key!r}")
    if "lifecycle" in top:
        lifecycle_node = top["lifecycle"][1]
        lifecycle = _lifecycle(lifecycle_node, found)
        if lifecycles:
            found.add(lifecycle_node, "only one policy file may have a 'lifecycle' section "
                                      f"(first in {lifecycles[0][0]})")
        elif lifecycle is not None:
            lifecycles.append((f"{shown}:{lifecycle_node.start_mark.line + 1}", lifecycle))
    if "version" not in top or _scalar(top["version"][1]) != "1":
        found.add(root, "a policy file starts with 'version: 1'")
    rules_node = top.get("rules", (None, None))[1]
    if not isinstance(rules_node, SequenceNode):
        found.add(rules_node or root, "'rules' is a list of rules")
        return []
    rules = []
    for rule_node in rules_node.value:
        rule = _compile_rule(rule_node, found)
        if rule is None:
            continue
        if rule.id in seen:
            found.add(rule_node, f"duplicate rule id {rule.id!r} (first at {seen[rule.id]})")
            continue
        seen[rule.id] = rule.source
        rules.append(rule)
    return rules


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a directory, in name order (test cases live in tests/)."""
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def version_of(files: list[Path]) -> str:
    """SHA-256 over every file's name and bytes: changes when any rule changes."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_policy_set(directory: Path) -> PolicySet:
    """Compile every policy file in `directory`, or raise PolicyError listing every problem."""
    files = policy_files(directory)
    problems: list[str] = []
    if not files:
        raise PolicyError([f"{directory}:1: no policy files (*.yaml) found"])
    seen: dict[str, str] = {}
    rules: list[CompiledRule] = []
    lifecycles: list[tuple[str, Lifecycle]] = []
    for path in files:
        rules.extend(_load_file(path, str(path), seen, problems, lifecycles))
    if problems:
        raise PolicyError(problems)
    return PolicySet(rules, version_of(files),
                     lifecycles[0][1] if lifecycles else Lifecycle())
