"""Power loss with PostgreSQL (checklist R3): a cluster of its own, its data directory on the
lossy mount (tests/fault/lossyfs.py), `fsync`, `synchronous_commit` and `full_page_writes` on.
The cluster, the vault and the file system are SIGKILLed together; the cluster recovers from
what reached the "disk", and every acknowledged write must be there. The negative control:
commits acknowledged with `synchronous_commit=off` (which the vault refuses to run on) are lost.

Skipped, with the reason, without FUSE, without root, or without PostgreSQL's server binaries.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlmodel import Session

from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.engine import make_engine
from cmr_vault.db.migrate import upgrade
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import BASE_URL
from tests.fault.conftest import LossyMount
from tests.fault.test_power_loss import power_loss_under_load
from tests.load.harness import Customer, VaultProcess, free_port


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class LossyCluster:
    """A PostgreSQL cluster whose data directory is on the lossy mount."""

    def __init__(self, mount: LossyMount, binaries: Path, log: Path) -> None:
        self.mount, self.binaries, self.log = mount, binaries, log
        self.port = free_port()
        self.data = mount.path / "pgdata"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        subprocess.run([str(self.binaries / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres"], user="postgres", group="postgres", cwd="/",
                       check=True, capture_output=True, timeout=300)

    def start(self, *settings: str) -> None:
        options = [f"-c{s}" for s in ("listen_addresses=127.0.0.1",
                                       "unix_socket_directories=", *settings)]
        with self.log.open("a") as log:
            # Its own process group: one killpg reaches the postmaster and every backend.
            self.process = subprocess.Popen(
                [str(self.binaries / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 *options], user="postgres", group="postgres", cwd="/", stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120  # crash recovery runs before it accepts anyone
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the lossy cluster did not start: see {self.log}") from None
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (one process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _cluster_processes(self.process) and time.monotonic() < deadline:
            time.sleep(0.1)

    def power_loss(self, *settings: str) -> None:
        self.kill()
        self.mount.power_loss()
        self.start(*settings)


def _cluster_processes(postmaster: subprocess.Popen[bytes] | None) -> list[str]:
    """Backends still in the postmaster's process group (they hold files on the mount)."""
    if postmaster is None:
        return []
    found = subprocess.run(["pgrep", "-g", str(postmaster.pid)], capture_output=True,
                           text=True, check=False)
    return found.stdout.split()


@pytest.fixture
def cluster(lossy: LossyMount, tmp_path: Path) -> Iterator[LossyCluster]:
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server binaries (initdb, postgres) are not installed")
    found = LossyCluster(lossy, binaries, tmp_path / "postgres.log")
    found.init()
    found.start()
    try:
        yield found
    finally:
        found.kill()


# --- the harness can see a loss --------------------------------------------------------------


def _acknowledged_then_power_loss(cluster: LossyCluster, synchronous_commit: str,
                                  commits: int) -> int:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE acked (id integer PRIMARY KEY)")
        conn.execute("CHECKPOINT")
        conn.execute(f"SET synchronous_commit = {synchronous_commit}")
        for i in range(commits):
            conn.execute("INSERT INTO acked VALUES (%s)", (i,))  # acknowledged on return
    cluster.power_loss()
    with psycopg.connect(cluster.url()) as conn:
        row = conn.execute("SELECT count(*) FROM acked").fetchone()
        return int(row[0]) if row else 0


def test_synchronous_commit_off_loses_acknowledged_commits_which_shows_the_harness_sees_loss(
    cluster: LossyCluster,
) -> None:
    # The WAL writer would flush within 200 ms by itself; give it no chance before the blow.
    cluster.kill()
    cluster.start("wal_writer_delay=10000")
    assert _acknowledged_then_power_loss(cluster, "off", commits=300) < 300


def test_synchronous_commit_on_keeps_every_acknowledged_commit(cluster: LossyCluster) -> None:
    assert _acknowledged_then_power_loss(cluster, "on", commits=300) == 300


# --- the vault -------------------------------------------------------------------------------


@pytest.fixture
def database_url(cluster: LossyCluster) -> str:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE vault")
    engine = make_engine(cluster.url("vault"))
    upgrade(engine)
    engine.dispose()
    return cluster.url("vault")


@pytest.fixture
def settings(lossy: LossyMount, database_url: str) -> Settings:
    """The database on the lossy cluster; key store and keyring on the lossy mount too."""
    keys = lossy.path / "vault-keys"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=keys,
        database_url=database_url,
        keystore_url=f"sqlite:///{keys / 'keys' / 'keystore.db'}",
        base_url=BASE_URL,
        checkpoint_interval_seconds=0,
        delivery_interval_seconds=0,
    )
    write_keyring(settings.resolved_key_file, Keyring.generate())
    return settings


def test_power_loss_under_load_loses_no_acknowledged_write_on_postgresql(
    live: tuple[VaultProcess, list[Customer]], cluster: LossyCluster, settings: Settings,
    runtime: Runtime, db_session: Session, tmp_path: Path,
) -> None:
    power_loss_under_load(live, cluster.power_loss, runtime, db_session, settings, tmp_path,
                          "power loss (PostgreSQL, unsynced lost)")
