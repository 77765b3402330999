"""Power loss (checklist R3): the vault's SQLite database, key store and keyring live on a
file system that forgets every write not yet fsynced (tests/fault/lossyfs.py, the
`lose-unfsynced-writes` half of LazyFS). The vault serves the load of tests/load, then the
vault and the file system are SIGKILLed together, the file system is mounted again from what
reached its "disk", and the vault starts on that: every acknowledged write must be there.

The negative control shows the harness can see a loss: the same kill on a database with
`synchronous=NORMAL` (which the vault refuses to start on) loses acknowledged commits, and one
with `synchronous=FULL` loses none.

Skipped, with the reason, where FUSE is not available (no /dev/fuse, no fusermount3, no
libfuse, not root). CI installs Debian's fuse3 (.ci/run). test_power_loss_postgres.py does the
same with PostgreSQL's data directory on the lossy mount.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session

from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import BASE_URL
from tests.fault.conftest import LossyMount
from tests.fault.test_crash_restart import _assert_safe, _finish
from tests.load.harness import Customer, Journal, VaultProcess, run_load

SECONDS = 8


def _synced_copy(source: Path, target: Path) -> None:
    shutil.copy(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.fixture
def database_url(lossy: LossyMount, sqlite_template: Path) -> str:
    """The migrated template, copied onto the lossy mount and synced, as `cmr-vault init` does."""
    path = lossy.path / "vault.db"
    _synced_copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(lossy: LossyMount, database_url: str) -> Settings:
    """Database, key store and keyring all on the lossy mount."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=lossy.path,
        database_url=database_url,
        keystore_url=f"sqlite:///{lossy.path / 'keys' / 'keystore.db'}",
        base_url=BASE_URL,
        checkpoint_interval_seconds=0,
        delivery_interval_seconds=0,
    )
    write_keyring(settings.resolved_key_file, Keyring.generate())
    return settings


# --- the harness can see a loss --------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sys.argv[2]}")
    for i in range(int(sys.argv[3])):
        db.execute("INSERT INTO acked VALUES (?)", (i,))
        print(i, flush=True)  # acknowledged: the commit returned
    time.sleep(600)  # killed here, without a clean close (which would checkpoint and sync)
""")


def _acknowledged_then_power_loss(lossy: LossyMount, synchronous: str, commits: int) -> int:
    """Commits acknowledged by SQLite, SIGKILL, power loss; returns how many are still there."""
    path = lossy.path / f"{synchronous}.db"
    with sqlite3.connect(path) as setup:  # a clean close: the empty table is durable
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE acked (id INTEGER PRIMARY KEY)")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), synchronous,
                               str(commits)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acknowledged = 0
    for line in writer.stdout:
        acknowledged += 1
        if int(line) == commits - 1:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert acknowledged == commits
    lossy.power_loss()
    with sqlite3.connect(path) as after:
        return int(after.execute("SELECT count(*) FROM acked").fetchone()[0])


def test_synchronous_normal_loses_acknowledged_commits_which_shows_the_harness_sees_loss(
    lossy: LossyMount,
) -> None:
    found = _acknowledged_then_power_loss(lossy, "NORMAL", commits=300)
    assert found < 300


def test_synchronous_full_keeps_every_acknowledged_commit(lossy: LossyMount) -> None:
    assert _acknowledged_then_power_loss(lossy, "FULL", commits=300) == 300


# --- the vault -------------------------------------------------------------------------------


def power_loss_under_load(live: tuple[VaultProcess, list[Customer]], power_loss: Callable[[], None],
                          runtime: Runtime, db_session: Session, settings: Settings,
                          tmp_path: Path, title: str) -> None:
    """Load, then the vault and the disk under it die together; the vault restarts without
    repair and every acknowledged write must still be there."""
    vault, customers = live
    journal = Journal()
    run_load(vault.base_url, customers, journal, seconds=SECONDS, company_threads=4)
    vault.kill()
    # This process holds the database open too: let go of it before the "disk" changes.
    db_session.close()
    runtime.engine.dispose()
    runtime.keystore_engine.dispose()
    power_loss()
    vault.start()  # recovers from what was synced, without manual repair

    report = _finish(vault, journal, settings, tmp_path, title)

    assert journal.requests["push ok"] > 0 and journal.requests["read ok"] > 0
    _assert_safe(report)


def test_power_loss_under_load_loses_no_acknowledged_write(
    live: tuple[VaultProcess, list[Customer]], lossy: LossyMount, settings: Settings,
    runtime: Runtime, db_session: Session, tmp_path: Path,
) -> None:
    power_loss_under_load(live, lossy.power_loss, runtime, db_session, settings, tmp_path,
                          "power loss (SQLite, unsynced lost)")
