"""Epoch keys: the outer seal on every wrapped data key, and the reason erasure is final.

A database cannot promise that a deleted row leaves no bytes behind: PostgreSQL keeps the old
tuple in its heap pages (even after VACUUM) and in its WAL; SQLite keeps old pages in its WAL and
free pages unless told otherwise. So every KEK-wrapped data key is sealed again, in the key store,
under the current *epoch key*, and the epoch keys live here, in a small file beside the keyring
(`epoch-keys.json`, mode 0600), never in a database. After an erasure the vault re-seals every
remaining data key under a fresh epoch key and destroys the old one (`DataKeyStore.shred`):
whatever residue of the erased customer's key the database still holds is then sealed under a
key that no longer exists anywhere the vault writes.

Destroying a key here is a real deletion: the file is replaced atomically by one without the key,
and the old file's bytes are overwritten with zeros through a descriptor opened before the
replacement, so no crash can leave the vault without its current epoch key.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cmr_vault.crypto.kek import KeyUnavailableError, open_key, seal_key

KEY_BYTES = 32


class EpochKeyMissingError(KeyUnavailableError):
    """The epoch key a data key is sealed under is not in the file: destroyed, or never there."""


def seal(epoch_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """AES-256-GCM over a KEK-wrapped data key: nonce, then ciphertext and tag."""
    return seal_key(epoch_key, wrapped, aad)


def unseal(epoch_key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The KEK-wrapped data key inside an epoch seal; fails closed on any mismatch."""
    return open_key(epoch_key, sealed, aad, under="epoch key")


def new_epoch_id() -> str:
    """A sortable, unique epoch identifier."""
    return f"epoch-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


class EpochKeyFile:
    """The epoch keys on disk, shared by every process of one vault.

    Reads are cheap and lock-free (the file is only ever replaced whole) and re-read whenever the
    file changed, so a key destroyed by one process leaves every other process's memory on its
    next use. Changes take an exclusive `flock` on a lock file beside it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._guard = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"EpochKeyFile(path={str(self._path)!r})"

    @property
    def path(self) -> Path:
        """Where the epoch keys live."""
        return self._path

    def held(self) -> dict[str, bytes]:
        """Every epoch key the file holds now."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            with self._guard:
                self._stamp, self._keys = None, {}
            return {}
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._guard:
            if stamp != self._stamp:
                self._keys = self._read()
                self._stamp = stamp
            return dict(self._keys)

    def key(self, epoch_id: str) -> bytes:
        """One epoch key; a destroyed or unknown epoch fails closed."""
        key = self.held().get(epoch_id)
        if key is None:
            raise EpochKeyMissingError(f"epoch key {epoch_id!r} is not in {self._path}")
        return key

    def _read(self) -> dict[str, bytes]:
        try:
            raw = json.loads(self._path.read_text())
            return {k: base64.b64decode(v, validate=True) for k, v in raw["keys"].items()}
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise KeyUnavailableError(f"epoch key file {self._path} is unreadable") from exc

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the file's lock: one process at a time adds or destroys epoch keys."""
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self) -> str:
        """Write a fresh epoch key beside the existing ones (call inside `changing`)."""
        epoch_id = new_epoch_id()
        self._write({**self.held(), epoch_id: secrets.token_bytes(KEY_BYTES)})
        return epoch_id

    def keep_only(self, epoch_id: str) -> list[str]:
        """Destroy every epoch key but `epoch_id` (call inside `changing`); the ids destroyed."""
        keys = self.held()
        doomed = sorted(set(keys) - {epoch_id})
        if doomed:
            self._write({epoch_id: self.key(epoch_id)})
        return doomed

    def _write(self, keys: dict[str, bytes]) -> None:
        text = json.dumps(
            {"format": 1, "keys": {k: base64.b64encode(v).decode("ascii") for k, v in keys.items()}}
        )
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            old = os.open(self._path, os.O_WRONLY)
        except FileNotFoundError:
            old = None
        try:
            os.replace(tmp, self._path)
            _fsync_dir(self._path.parent)
            if old is not None:
                # The replaced file is unlinked but its blocks still hold the old keys: zero them.
                size = os.fstat(old).st_size
                os.pwrite(old, bytes(size), 0)
                os.fsync(old)
        finally:
            if old is not None:
                os.close(old)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
