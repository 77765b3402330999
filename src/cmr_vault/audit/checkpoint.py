"""Signed tree heads in the C2SP tlog-checkpoint and signed-note formats.

A checkpoint's body is three lines: origin, tree size in decimal, base64 root hash. The signed
note appends a blank line and one signature line, "— <key name> <base64(key id || sig)>", where
the key id is the first four bytes of SHA-256(name || "\\n" || 0x01 || public key). Using the
standard formats means an auditor can check our heads with any signed-note verifier, holding
nothing but the verifier key string "<name>+<key id hex>+<base64(0x01 || public key)>".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_ED25519 = b"\x01"
_SIGNATURE_PREFIX = "\u2014 "


class CheckpointError(ValueError):
    """A checkpoint or verifier key that is malformed or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    """The tree head of one log at one size."""

    origin: str
    size: int
    root_hash: bytes

    def body(self) -> str:
        """The signed text: origin, size, root, each on its own line."""
        root = base64.b64encode(self.root_hash).decode()
        return f"{self.origin}\n{self.size}\n{root}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the signature line of one key."""

    checkpoint: Checkpoint
    key_name: str
    key_id: bytes
    signature: bytes

    def to_text(self) -> str:
        """The signed note as it is stored, exported and served."""
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{self.checkpoint.body()}\n{_SIGNATURE_PREFIX}{self.key_name} {blob}\n"


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey, algorithm: bytes = _ED25519) -> bytes:
    """The four-byte key hash the signed-note format puts before each signature.

    `algorithm` is the signature type byte: 0x01 for the log's Ed25519 signatures, 0x04 for a
    witness's Ed25519 cosignatures (C2SP tlog-cosignature).
    """
    return hashlib.sha256(name.encode() + b"\n" + algorithm + _raw_public(public_key)).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise CheckpointError(f"a key name has no spaces or '+': {name!r}")


def sign_checkpoint(
    checkpoint: Checkpoint, private_key: Ed25519PrivateKey, name: str
) -> SignedCheckpoint:
    """Sign a checkpoint's body with the log's key."""
    _check_name(name)
    signature = private_key.sign(checkpoint.body().encode())
    return SignedCheckpoint(checkpoint, name, key_id(name, private_key.public_key()), signature)


def verifier_key_for(private_key: Ed25519PrivateKey, name: str,
                     algorithm: bytes = _ED25519) -> str:
    """The verifier key string to hand to auditors."""
    _check_name(name)
    public = private_key.public_key()
    encoded = base64.b64encode(algorithm + _raw_public(public)).decode()
    return f"{name}+{key_id(name, public, algorithm).hex()}+{encoded}"


def parse_verifier_key(text: str, algorithm: bytes = _ED25519) -> tuple[str, Ed25519PublicKey]:
    """(key name, public key) from a verifier key string, checking its type and key id."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise CheckpointError("a verifier key reads <name>+<key id>+<key>")
    name, id_hex, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        expected_id = bytes.fromhex(id_hex)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"the verifier key is not well-formed: {exc}") from exc
    if len(raw) != 33 or raw[:1] != algorithm:
        raise CheckpointError(f"the verifier key is not an Ed25519 key of type 0x{algorithm.hex()}")
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    if not hmac.compare_digest(key_id(name, public, algorithm), expected_id):
        raise CheckpointError("the verifier key's id does not match its name and key")
    return name, public


def parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("a checkpoint body has origin, size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise CheckpointError("the checkpoint's origin or size line is malformed")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("the checkpoint's root is not base64") from exc
    if len(root) != 32:
        raise CheckpointError("the checkpoint's root is not a SHA-256 hash")
    return Checkpoint(origin, int(size_text), root)


def split_note(note: str) -> tuple[str, list[str]]:
    """(body with its final newline, signature lines) of a signed note."""
    body, separator, signatures = note.rpartition("\n\n")
    if not separator:
        raise CheckpointError("a signed note has a blank line before its signatures")
    return body + "\n", signatures.splitlines()


def verify_checkpoint(note: str, public_key: Ed25519PublicKey, name: str) -> Checkpoint:
    """The checkpoint in `note`, once a signature by `name`'s key has been found valid on it."""
    body, lines = split_note(note)
    wanted_id = key_id(name, public_key)
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise CheckpointError("a signature line starts with an em dash")
        line_name, _, blob = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if line_name != name:
            continue
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("a signature is not base64") from exc
        if len(raw) != 4 + 64 or not hmac.compare_digest(raw[:4], wanted_id):
            continue
        try:
            public_key.verify(raw[4:], body.encode())
        except InvalidSignature as exc:
            raise CheckpointError("the signature does not verify") from exc
        return parse_body(body)
    raise CheckpointError(f"the note carries no signature by {name}")
