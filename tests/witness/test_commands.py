"""`cmr-vault witness key | serve`: what an operator runs to witness someone else's log."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmr_vault.audit.checkpoint import Checkpoint, sign_checkpoint, verifier_key_for
from cmr_vault.audit.cosignature import WitnessKey, cosignatures
from cmr_vault.audit.merkle import MerkleTree, leaf_hash
from cmr_vault.cli import main

ORIGIN = "vault.example/audit"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_served_witness_cosigns_the_log_it_follows_with_the_key_it_printed(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "witness.key"
    printed = CliRunner().invoke(
        main, ["witness", "key", "--name", "witness.example/w1", "--key-file", str(key_file)]
    )
    assert printed.exit_code == 0
    assert key_file.stat().st_mode & 0o077 == 0
    witness_key = printed.output.strip()
    log_key = Ed25519PrivateKey.generate()
    tree = MerkleTree()
    tree.extend(leaf_hash(f"entry {i}".encode()) for i in range(3))
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, tree.root()), log_key, ORIGIN).to_text()
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cmr_vault",
            "witness",
            "serve",
            "--name",
            "witness.example/w1",
            "--key-file",
            str(key_file),
            "--state",
            str(tmp_path / "state.db"),
            "--log",
            verifier_key_for(log_key, ORIGIN),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(url + "/").text.strip() == witness_key

        answer = httpx.post(url + "/add-checkpoint", content=b"old 0\n\n" + note.encode())

        assert answer.status_code == 200
        assert set(cosignatures(note + answer.text, [WitnessKey.parse(witness_key)])) == {
            "witness.example/w1"
        }
    finally:
        process.terminate()
        process.wait(timeout=30)
