"""The witness's one decision: cosign a checkpoint, or say why not (C2SP tlog-witness).

For each log it trusts (by origin and Ed25519 key) the witness remembers only the newest
checkpoint it cosigned. A new one is cosigned only when it extends that one: the submitter
names the size it believes the witness holds (409 with the real size when wrong) and proves
consistency from it (422 when the proof fails, or when the same size comes with another root:
the split view a witness exists to refuse). Check and update happen in one SQLite write
transaction, so two concurrent submissions can never roll the witness back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cmr_vault.audit.checkpoint import (
    CheckpointError,
    parse_body,
    parse_verifier_key,
    split_note,
    verify_checkpoint,
)
from cmr_vault.audit.cosignature import cosign, origin_hash, witness_verifier_key
from cmr_vault.audit.merkle import verify_consistency

log = logging.getLogger(__name__)

SIZE_MEDIA_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
_EMPTY_ROOT = hashlib.sha256(b"").digest()
_SCHEMA = """CREATE TABLE IF NOT EXISTS witnessed (
    origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL)"""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body and media type."""

    status: int
    body: str
    media_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class TrustedLog:
    """A log the witness follows: its checkpoints' origin, and the key that signs them."""

    origin: str
    key_name: str
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, verifier_key: str) -> TrustedLog:
        """From the log's verifier key; the key name is the log's origin (as the vault's is)."""
        name, public = parse_verifier_key(verifier_key)
        return cls(name, name, public)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The witness's Ed25519 key from `path` (base64 seed), created 0600 on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        with path.open("x", encoding="ascii") as handle:
            path.chmod(0o600)
            handle.write(base64.b64encode(seed).decode() + "\n")
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))


class Witness:
    """One witness: a name, a cosigning key, the logs it follows and where it keeps state."""

    def __init__(
        self,
        *,
        name: str,
        key: Ed25519PrivateKey,
        logs: list[TrustedLog],
        state: Path,
        now: Callable[[], int],
    ) -> None:
        self.name = name
        self._key = key
        self._logs = {trusted.origin: trusted for trusted in logs}
        self._state = state
        self._now = now
        state.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    @property
    def verifier_key(self) -> str:
        """What logs and clients configure to check this witness's cosignatures."""
        return witness_verifier_key(self._key, self.name)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._state, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def latest(self, hashed_origin: str) -> str | None:
        """The newest checkpoint cosigned for the log whose origin hashes to `hashed_origin`."""
        with self._connect() as conn:
            for origin, note in conn.execute("SELECT origin, note FROM witnessed"):
                if origin_hash(origin) == hashed_origin:
                    return str(note)
        return None

    def add_checkpoint(self, request: bytes) -> Answer:
        """Handle one `add-checkpoint` body: old size, proof lines, blank line, checkpoint."""
        try:
            old, proof, note = _parse_request(request)
            body, _ = split_note(note)
            checkpoint = parse_body(body)
        except (CheckpointError, ValueError) as exc:
            return Answer(400, f"malformed request: {exc}\n")
        trusted = self._logs.get(checkpoint.origin)
        if trusted is None:
            return Answer(404, "unknown log origin\n")
        try:
            verify_checkpoint(note, trusted.public_key, trusted.key_name)
        except CheckpointError as exc:
            return Answer(403, f"the log's signature does not verify: {exc}\n")
        if old > checkpoint.size:
            return Answer(400, "the old size is larger than the checkpoint's\n")
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT size, root FROM witnessed WHERE origin = ?", (checkpoint.origin,)
            ).fetchone()
            known_size, known_root = (row[0], bytes(row[1])) if row else (0, _EMPTY_ROOT)
            if old != known_size:
                conn.execute("ROLLBACK")
                return Answer(409, f"{known_size}\n", SIZE_MEDIA_TYPE)
            if not _consistent(old, known_root, proof, checkpoint.size, checkpoint.root_hash):
                conn.execute("ROLLBACK")
                log.warning(
                    "refused an inconsistent checkpoint of %s at size %d (holding %d)",
                    checkpoint.origin,
                    checkpoint.size,
                    known_size,
                )
                return Answer(422, "the checkpoint is not consistent with the one cosigned\n")
            line = cosign(body, self._key, self.name, self._now())
            kept = "".join(
                f"{s}\n" for s in split_note(note)[1] if s.startswith(f"\u2014 {trusted.key_name} ")
            )
            conn.execute(
                "INSERT INTO witnessed (origin, size, root, note) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                "note = excluded.note",
                (checkpoint.origin, checkpoint.size, checkpoint.root_hash, f"{body}\n{kept}{line}"),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        return Answer(200, line)


def _consistent(old: int, old_root: bytes, proof: list[bytes], size: int, root: bytes) -> bool:
    if size == 0:
        return root == _EMPTY_ROOT
    if old == 0:
        return not proof
    return verify_consistency(old, size, proof, old_root, root)


def _parse_request(request: bytes) -> tuple[int, list[bytes], str]:
    text = request.decode("utf-8")
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise ValueError("no blank line before the checkpoint")
    lines = head.split("\n")
    keyword, _, size_text = lines[0].partition(" ")
    if keyword != "old" or not size_text.isdigit() or str(int(size_text)) != size_text:
        raise ValueError("the first line is `old <size>`")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError("more than 63 proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error as exc:
        raise ValueError("a proof line is not base64") from exc
    if any(len(node) != 32 for node in proof):
        raise ValueError("a proof line is not a SHA-256 hash")
    return int(size_text), proof, note
