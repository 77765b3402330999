"""The witness's decisions, as C2SP tlog-witness specifies them: it cosigns only a checkpoint
that extends the last one it cosigned, and says precisely why not otherwise."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmr_vault.audit.checkpoint import Checkpoint, sign_checkpoint, verifier_key_for
from cmr_vault.audit.cosignature import WitnessKey, cosignatures, origin_hash
from cmr_vault.audit.merkle import MerkleTree, leaf_hash
from cmr_vault.witness.service import SIZE_MEDIA_TYPE, TrustedLog, Witness

ORIGIN = "vault.example/audit"
NOW = 1_790_000_000


class Log:
    """A little log with its own key, signing checkpoints as the vault does."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self.key = key or Ed25519PrivateKey.generate()
        self.tree = MerkleTree()

    def grow(self, count: int, salt: str = "") -> None:
        start = len(self.tree)
        self.tree.extend(leaf_hash(f"{salt}entry {start + i}".encode()) for i in range(count))

    def note(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.tree) if size is None else size
        checkpoint = Checkpoint(ORIGIN, size, root or self.tree.root(size))
        return sign_checkpoint(checkpoint, self.key, ORIGIN).to_text()

    def request(self, old: int, note: str | None = None, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = self.tree.consistency_proof(old, len(self.tree)) if old else []
        lines = [f"old {old}", *(base64.b64encode(p).decode() for p in proof)]
        return ("\n".join(lines) + "\n\n" + (note or self.note())).encode()


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness(tmp_path: Path, log: Log) -> Witness:
    trusted = TrustedLog.parse(verifier_key_for(log.key, ORIGIN))
    return Witness(
        name="witness.example/w1",
        key=Ed25519PrivateKey.generate(),
        logs=[trusted],
        state=tmp_path / "witness.db",
        now=lambda: NOW,
    )


def _key(witness: Witness) -> WitnessKey:
    return WitnessKey.parse(witness.verifier_key)


def test_a_first_checkpoint_is_cosigned_and_served_to_monitors(witness: Witness, log: Log) -> None:
    log.grow(5)
    answer = witness.add_checkpoint(log.request(0))

    assert answer.status == 200
    assert cosignatures(log.note() + answer.body, [_key(witness)]) == {witness.name: NOW}
    served = witness.latest(origin_hash(ORIGIN))
    assert served is not None and served.startswith(log.note().split("\n\n")[0])
    assert cosignatures(served, [_key(witness)]) == {witness.name: NOW}


def test_a_checkpoint_extending_the_cosigned_one_with_its_proof_is_cosigned(
    witness: Witness, log: Log
) -> None:
    log.grow(5)
    witness.add_checkpoint(log.request(0))
    log.grow(7)

    assert witness.add_checkpoint(log.request(5)).status == 200


def test_a_wrong_old_size_gets_409_with_the_size_the_witness_holds(
    witness: Witness, log: Log
) -> None:
    log.grow(5)
    witness.add_checkpoint(log.request(0))
    log.grow(3)

    answer = witness.add_checkpoint(log.request(0))

    assert (answer.status, answer.body, answer.media_type) == (409, "5\n", SIZE_MEDIA_TYPE)


def test_a_consistency_proof_that_does_not_verify_gets_422(witness: Witness, log: Log) -> None:
    log.grow(5)
    witness.add_checkpoint(log.request(0))
    log.grow(3)
    proof = log.tree.consistency_proof(5, 8)
    proof[0] = bytes(32)

    assert witness.add_checkpoint(log.request(5, proof=proof)).status == 422


def test_a_split_view_two_trees_of_one_size_is_refused(witness: Witness, log: Log) -> None:
    log.grow(5)
    assert witness.add_checkpoint(log.request(0)).status == 200
    fork = Log(log.key)
    fork.grow(5, salt="forged ")

    answer = witness.add_checkpoint(fork.request(5, proof=[]))

    assert answer.status == 422
    served = witness.latest(origin_hash(ORIGIN))
    assert served is not None and base64.b64encode(log.tree.root()).decode() in served


def test_a_fork_that_grows_past_the_cosigned_tree_is_refused(witness: Witness, log: Log) -> None:
    log.grow(5)
    witness.add_checkpoint(log.request(0))
    fork = Log(log.key)
    fork.grow(9, salt="forged ")

    assert witness.add_checkpoint(fork.request(5)).status == 422


@pytest.mark.parametrize(
    ("request_body", "status"),
    [
        (b"old 7\n\n", 400),
        (b"new 0\n\nvault.example/audit\n1\n", 400),
        (b"old 01\n\n", 400),
    ],
)
def test_malformed_requests_get_400(witness: Witness, request_body: bytes, status: int) -> None:
    assert witness.add_checkpoint(request_body).status == status


def test_an_old_size_above_the_checkpoint_gets_400(witness: Witness, log: Log) -> None:
    log.grow(3)
    assert witness.add_checkpoint(log.request(0).replace(b"old 0", b"old 4", 1)).status == 400


def test_an_unknown_log_gets_404_and_a_bad_signature_403(witness: Witness, log: Log) -> None:
    log.grow(2)
    stranger = Log()
    stranger.grow(2)
    other_origin = stranger.note().replace(ORIGIN, "other.example/log")
    assert witness.add_checkpoint(b"old 0\n\n" + other_origin.encode()).status == 404
    assert witness.add_checkpoint(stranger.request(0)).status == 403
