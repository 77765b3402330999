"""`cmr-vault policy check | test | explain`: validate, test and explain the policy set."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from cmr_vault.policy.cases import CaseError, facts_from, load_cases, request_from, run_cases
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.loader import PolicyError, load_policy_set


def _directory(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    from cmr_vault.settings import get_settings

    return get_settings().policy_dir


def _load(directory: Path) -> PolicySet:
    try:
        return load_policy_set(directory)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(1) from exc


DIRECTORY = click.argument("directory", required=False,
                           type=click.Path(exists=True, file_okay=False, path_type=Path))


@click.group()
def policy() -> None:
    """The permission-marketing policy set."""


@policy.command("check")
@DIRECTORY
def check(directory: Path | None) -> None:
    """Validate every policy file; list every problem as file:line: message."""
    policy_set = _load(_directory(directory))
    click.echo(f"{len(policy_set.rules)} rules, version {policy_set.version}")


@policy.command("test")
@DIRECTORY
def test(directory: Path | None) -> None:
    """Run the test cases kept in DIRECTORY/tests/*.yaml against the policy set."""
    folder = _directory(directory)
    policy_set = _load(folder)
    try:
        cases = load_cases(folder)
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    if not cases:
        raise click.ClickException(f"no test cases in {folder / 'tests'}")
    failed = 0
    for case, failures in run_cases(policy_set, cases):
        if failures:
            failed += 1
            click.echo(f"FAIL {case.name} ({case.source})")
            for failure in failures:
                click.echo(f"     {failure}")
        else:
            click.echo(f"ok   {case.name}")
    click.echo(f"{len(cases) - failed} passed, {failed} failed")
    if failed:
        raise SystemExit(1)


@policy.command("explain")
@click.option("--request", "request_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML with `request` and `facts`, shaped like a test case.")
@DIRECTORY
def explain(request_file: Path, directory: Path | None) -> None:
    """Show, rule by rule, why a request is decided as it is."""
    policy_set = _load(_directory(directory))
    try:
        document = yaml.safe_load(request_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{request_file}: not valid YAML: {exc}") from exc
    try:
        request = request_from(document.get("request") or {}, str(request_file))
        facts = facts_from(document.get("facts") or {}, str(request_file))
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = [("rule", "where", "applies", "condition", "effect", "reason")]
    for trace in policy_set.explain(request, facts):
        condition = "-" if trace.condition is None else str(trace.condition).lower()
        rows.append((trace.rule_id, trace.source, "yes" if trace.applies else "no", condition,
                     trace.effect, trace.reason))
    # Plain aligned columns rather than a drawn table: this output is read, grepped and diffed.
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        click.echo(f"{line}  {row[5]}".rstrip())
    decision = policy_set.decide(request, facts)
    until = f" until {decision.defer_until.isoformat()}" if decision.defer_until else ""
    click.echo(f"Decision: {decision.outcome}{until}")
    for hit in decision.rules:
        click.echo(f"  {hit.rule_id}: {hit.reason}")
    if decision.obligations:
        click.echo(f"Obligations: {', '.join(decision.obligations)}")
    click.echo(f"Policy version: {decision.policy_version}")
