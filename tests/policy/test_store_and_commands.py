"""Reloading keeps the last good set; `policy check|test|explain` as an operator uses them."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session, col, select

from cmr_vault.audit.models import AuditEntry
from cmr_vault.db.engine import make_engine
from cmr_vault.policy.commands import policy
from cmr_vault.policy.store import PolicyStore
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import FrozenClock
from tests.policy.conftest import SHIPPED


def test_a_bad_reload_keeps_the_last_good_set_and_says_why(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0)
    good = store.current.version
    marketing = policy_copy / "marketing.yaml"
    marketing.write_text(marketing.read_text().replace("not preferences.opted_in",
                                                       "not preferences.opted"))
    result = store.reload()
    assert not result.ok
    assert any("marketing.yaml" in p and "unknown fact 'preferences.opted'" in p
               for p in result.problems)
    assert store.current.version == good


def test_a_good_reload_switches_to_the_new_version(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0)
    old = store.current.version
    reads = policy_copy / "reads.yaml"
    reads.write_text(reads.read_text().replace("has no grant", "holds no grant"))
    result = store.reload()
    assert result.ok and result.changed
    assert store.current.version != old


def test_edited_files_are_picked_up_without_a_restart(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0.001)
    old = store.current.version
    reads = policy_copy / "reads.yaml"
    reads.write_text(reads.read_text() + "\n# edited\n")
    time.sleep(0.01)
    assert store.current.version != old


def test_policy_check_accepts_the_shipped_set() -> None:
    result = CliRunner().invoke(policy, ["check", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "rules, version" in result.output


def test_policy_check_lists_problems_and_fails(policy_copy: Path) -> None:
    (policy_copy / "extra.yaml").write_text("version: 1\nrules:\n  - id: x\n    effect: nope\n")
    result = CliRunner().invoke(policy, ["check", str(policy_copy)])
    assert result.exit_code == 1
    assert f"{policy_copy / 'extra.yaml'}:3:" in result.output


def test_policy_test_passes_on_the_shipped_set() -> None:
    result = CliRunner().invoke(policy, ["test", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


def test_policy_test_fails_when_a_rule_is_broken(policy_copy: Path) -> None:
    marketing = policy_copy / "marketing.yaml"
    marketing.write_text(marketing.read_text().replace(
        "counters.company_day >= preferences.cap_day",
        "counters.company_day > preferences.cap_day"))
    result = CliRunner().invoke(policy, ["test", str(policy_copy)])
    assert result.exit_code == 1
    assert "FAIL past the daily cap the push is refused" in result.output


def test_policy_explain_walks_through_every_rule(tmp_path: Path) -> None:
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
    result = CliRunner().invoke(policy, ["explain", "--request", str(request), str(SHIPPED)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "push.quiet-hours" in result.output
    assert "Decision: defer until 2026-11-24T06:00:00+00:00" in result.output


def test_reloads_good_and_refused_are_written_to_the_audit_log(
    policy_copy: Path, settings: Settings, clock: FrozenClock
) -> None:
    runtime = Runtime.build(settings.model_copy(update={"policy_dir": policy_copy}),
                            clock=clock)
    reads = policy_copy / "reads.yaml"
    reads.write_text(reads.read_text().replace("not grant.exists", "not grant.existing"))
    assert not runtime.policy.reload().ok
    reads.write_text(reads.read_text().replace("not grant.existing", "not grant.exists"))
    assert runtime.policy.reload().ok
    runtime.dispose()
    with Session(make_engine(settings.resolved_database_url, immediate=False)) as session:
        entries = session.exec(select(AuditEntry).where(
            col(AuditEntry.action).startswith("policy."))).all()
    assert [e.action for e in entries] == ["policy.refused", "policy.reloaded"]
    assert "grant.existing" in entries[0].details
