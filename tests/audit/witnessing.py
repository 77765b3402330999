"""Fixtures for tests with a witness: the witness's HTTP app served by uvicorn on loopback (in a
thread: starting the whole CLI per test costs seconds; tests/witness/test_commands.py runs
`cmr-vault witness serve` itself), following the test vault's log, and settings that point the
vault at it.

A test module opts in by importing `witnessed_settings` and overriding `settings` with it;
everything built on `settings` (runtime, app, client, browsers) then has the witness.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Thread

import pytest
import uvicorn

from cmr_vault.audit import transparency
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.settings import Settings
from cmr_vault.witness.app import create_witness_app
from cmr_vault.witness.service import TrustedLog, Witness, load_or_create_key
from tests.conftest import BASE_URL, reads_real_time

WITNESS_NAME = "witness.test/w1"


@dataclass(frozen=True)
class RunningWitness:
    """A witness listening on loopback: its URL, its key, and the log key it follows."""

    url: str
    verifier_key: str
    log_verifier_key: str
    server: uvicorn.Server


def start_witness(tmp_path: Path, log_verifier_key: str) -> tuple[RunningWitness, Thread]:
    """Serve a witness following `log_verifier_key` and wait until it listens."""
    service = Witness(
        name=WITNESS_NAME,
        key=load_or_create_key(tmp_path / "witness" / "key"),
        logs=[TrustedLog.parse(log_verifier_key)],
        state=tmp_path / "witness" / "state.db",
        now=lambda: int(time.time()),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_witness_app(service),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
        )
    )
    thread = Thread(target=server.run, name="test-witness", daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            return RunningWitness(
                f"http://127.0.0.1:{port}", service.verifier_key, log_verifier_key, server
            ), thread
        time.sleep(0.05)
    raise AssertionError("the witness did not start within 30 s")


@pytest.fixture
def log_keyring() -> Keyring:
    """The test vault's keyring, made before its settings so the witness can trust its key."""
    return Keyring.generate()


@pytest.fixture
@reads_real_time
def witness(tmp_path: Path, log_keyring: Keyring) -> Iterator[RunningWitness]:
    """A witness following the test vault's log; it stamps cosignatures with the real time."""
    origin = transparency.log_origin(BASE_URL)
    running, thread = start_witness(
        tmp_path, transparency.verifier_key(log_keyring.signing_key, origin)
    )
    yield running
    running.server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def witnessed_settings(
    tmp_path: Path, database_url: str, log_keyring: Keyring, witness: RunningWitness
) -> Settings:
    """The usual test settings, with the vault submitting its checkpoints to `witness`."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url=database_url,
        keystore_url=f"sqlite:///{tmp_path / 'keys' / 'keystore.db'}",
        base_url=BASE_URL,
        checkpoint_interval_seconds=0,
        delivery_interval_seconds=0,
        witnesses=[f"{witness.url} {witness.verifier_key}"],
        witness_max_age_seconds=600,
    )
    write_keyring(settings.resolved_key_file, log_keyring)
    return settings
