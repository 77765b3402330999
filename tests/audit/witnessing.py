"""Fixtures for tests with a witness: a real `cmr-vault witness serve` process on loopback,
following the test vault's log, and settings that point the vault at it.

A test module opts in by importing `witnessed_settings` and overriding `settings` with it;
everything built on `settings` (runtime, app, client, browsers) then has the witness.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cmr_vault.audit import transparency
from cmr_vault.audit.cosignature import witness_verifier_key
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.settings import Settings
from cmr_vault.witness.service import load_or_create_key
from tests.conftest import BASE_URL, reads_real_time

WITNESS_NAME = "witness.test/w1"


@dataclass(frozen=True)
class RunningWitness:
    """A witness process: where it listens, its key, and the log key it follows."""

    url: str
    verifier_key: str
    log_verifier_key: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_witness(tmp_path: Path, log_verifier_key: str) -> RunningWitness:
    """Start `cmr-vault witness serve` and wait until it answers."""
    key_file = tmp_path / "witness" / "key"
    public = witness_verifier_key(load_or_create_key(key_file), WITNESS_NAME)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cmr_vault", "witness", "serve", "--name", WITNESS_NAME,
         "--key-file", str(key_file), "--state", str(tmp_path / "witness" / "state.db"),
         "--log", log_verifier_key, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return RunningWitness(url, public, log_verifier_key, process)
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError("the witness exited at start")
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the witness did not answer within 30 s")


@pytest.fixture
def log_keyring() -> Keyring:
    """The test vault's keyring, made before its settings so the witness can trust its key."""
    return Keyring.generate()


@pytest.fixture
@reads_real_time
def witness(tmp_path: Path, log_keyring: Keyring) -> Iterator[RunningWitness]:
    """A witness following the test vault's log; it stamps cosignatures with the real time."""
    origin = transparency.log_origin(BASE_URL)
    running = start_witness(tmp_path, transparency.verifier_key(log_keyring.signing_key, origin))
    yield running
    running.process.terminate()
    running.process.wait(timeout=30)


@pytest.fixture
def witnessed_settings(tmp_path: Path, database_url: str, log_keyring: Keyring,
                       witness: RunningWitness) -> Settings:
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
