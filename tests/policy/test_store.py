"""The running server's policy set: a bad reload keeps the last good one; a good one swaps."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from cmr_vault.audit.models import AuditEntry
from cmr_vault.db.engine import make_engine
from cmr_vault.policy.facts import Action, DecisionRequest, Facts, GrantFacts, Outcome
from cmr_vault.policy.loader import PolicyError
from cmr_vault.policy.store import PolicyStore
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import FrozenClock

READ = DecisionRequest(company="c_shop", subject="s1", action=Action.READ,
                       resource="profile.email", purpose="receipts",
                       time=datetime(2026, 11, 23, 10, tzinfo=UTC))
GRANTED = Facts(grant=GrantFacts(exists=True, status="active",
                                 scopes=frozenset({"profile.email:read"}),
                                 purposes=frozenset({"receipts"})))


def test_a_bad_first_load_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("version: 1\nrules: [\n")
    with pytest.raises(PolicyError, match=r"rules\.yaml:\d+: not valid YAML"):
        PolicyStore(tmp_path)


def test_a_bad_reload_keeps_the_last_good_set_and_says_why(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0)
    good = store.current
    before = good.decide(READ, GRANTED)
    reads = policy_copy / "reads.yaml"
    reads.write_text(reads.read_text().replace("not grant.exists", "not grant.existing"))
    result = store.reload()
    assert not result.ok
    assert not result.changed
    assert result.version == good.version
    assert any("reads.yaml:9: in 'when': unknown fact 'grant.existing'" in p
               for p in result.problems)
    assert store.current is good
    assert store.current.decide(READ, GRANTED) == before
    assert before.outcome is Outcome.ALLOW


def test_a_good_reload_switches_to_the_new_version(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0)
    old = store.current.version
    reads = policy_copy / "reads.yaml"
    reads.write_text(reads.read_text().replace("effect: allow", "effect: deny"))
    result = store.reload()
    assert result.ok and result.changed
    assert result.version == store.current.version != old
    assert store.current.decide(READ, GRANTED).outcome is Outcome.DENY


def test_edited_files_are_picked_up_without_a_restart(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0.001)
    old = store.current.version
    reads = policy_copy / "reads.yaml"
    reads.write_text(reads.read_text() + "\n# edited\n")
    time.sleep(0.01)
    assert store.current.version != old


def test_sighup_reloads(policy_copy: Path) -> None:
    reloaded = threading.Event()
    store = PolicyStore(policy_copy, check_every=0, on_reload=lambda _result: reloaded.set())
    old = store.current.version
    previous = signal.getsignal(signal.SIGHUP)
    try:
        store.install_sighup_handler()
        reads = policy_copy / "reads.yaml"
        reads.write_text(reads.read_text() + "\n# edited\n")
        os.kill(os.getpid(), signal.SIGHUP)
        assert reloaded.wait(5)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert store.current.version != old


def test_sighup_handler_is_not_installed_off_the_main_thread(policy_copy: Path) -> None:
    store = PolicyStore(policy_copy, check_every=0)
    previous = signal.getsignal(signal.SIGHUP)
    worker = threading.Thread(target=store.install_sighup_handler)
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGHUP) is previous


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
