"""Witness cosignatures on checkpoints: C2SP tlog-cosignature, Ed25519 `cosignature/v1`.

A cosignature is a signed-note signature line by a witness, whose key id uses the type byte
0x04 and whose signature is an 8-byte big-endian timestamp followed by an Ed25519 signature
over "cosignature/v1\\n", "time <timestamp>\\n" and the checkpoint body. It states that, at
that time, this was the largest tree the witness had seen for the log, consistent with every
earlier one: a log that shows two different trees of one size to two audiences cannot get both
cosigned by the same witness (https://c2sp.org/tlog-cosignature).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cmr_vault.audit.checkpoint import (
    CheckpointError,
    key_id,
    parse_verifier_key,
    split_note,
    verifier_key_for,
)

COSIGNATURE_V1 = b"\x04"
_SIGNATURE_PREFIX = "\u2014 "
_MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True)
class WitnessKey:
    """A witness a verifier trusts: its name and Ed25519 cosigning key."""

    name: str
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, verifier_key: str) -> WitnessKey:
        """From a verifier key string `<name>+<key id>+base64(0x04 || key)`."""
        name, public = parse_verifier_key(verifier_key, COSIGNATURE_V1)
        return cls(name, public)

    @property
    def key_id(self) -> bytes:
        """The four bytes that lead each of this witness's cosignatures."""
        return key_id(self.name, self.public_key, COSIGNATURE_V1)


def origin_hash(origin: str) -> str:
    """The path element naming a log on a witness's monitoring prefix: hex SHA-256 of the
    log's origin (C2SP tlog-witness)."""
    return hashlib.sha256(origin.encode()).hexdigest()


def witness_verifier_key(private_key: Ed25519PrivateKey, name: str) -> str:
    """The verifier key string a witness hands to the logs and clients that trust it."""
    return verifier_key_for(private_key, name, COSIGNATURE_V1)


def signed_message(body: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header line, time line, then the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, private_key: Ed25519PrivateKey, name: str, timestamp: int) -> str:
    """The cosignature line (with its newline) a witness adds to a checkpoint body."""
    if not 0 < timestamp <= _MAX_TIMESTAMP:
        raise ValueError("a cosignature's timestamp is a positive POSIX time")
    signature = private_key.sign(signed_message(body, timestamp))
    public_id = key_id(name, private_key.public_key(), COSIGNATURE_V1)
    blob = base64.b64encode(public_id + timestamp.to_bytes(8, "big") + signature).decode()
    return f"{_SIGNATURE_PREFIX}{name} {blob}\n"


def cosignature_time(body: str, line: str, witness: WitnessKey) -> int | None:
    """The timestamp of `line` when it is a valid cosignature by `witness` on `body`.

    None when the line is by another key (ignored, as signed-note requires); raises when it
    names this witness's key but does not verify, which only a forgery or corruption does.
    """
    if not line.startswith(_SIGNATURE_PREFIX):
        raise CheckpointError("a signature line starts with an em dash")
    name, _, blob = line[len(_SIGNATURE_PREFIX) :].strip().partition(" ")
    if name != witness.name:
        return None
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("a cosignature is not base64") from exc
    if len(raw) != 4 + 8 + 64 or not hmac.compare_digest(raw[:4], witness.key_id):
        return None
    timestamp = int.from_bytes(raw[4:12], "big")
    if not 0 < timestamp <= _MAX_TIMESTAMP:
        raise CheckpointError(f"{witness.name}'s cosignature has no valid timestamp")
    try:
        witness.public_key.verify(raw[12:], signed_message(body, timestamp))
    except InvalidSignature as exc:
        raise CheckpointError(f"{witness.name}'s cosignature does not verify") from exc
    return timestamp


def cosignatures(note: str, witnesses: list[WitnessKey]) -> dict[str, int]:
    """Witness name -> timestamp of its valid cosignature on the note (witnesses absent from
    the note are absent from the answer)."""
    body, lines = split_note(note)
    found: dict[str, int] = {}
    for witness in witnesses:
        for line in lines:
            timestamp = cosignature_time(body, line, witness)
            if timestamp is not None:
                found[witness.name] = timestamp
                break
    return found
