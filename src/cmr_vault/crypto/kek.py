"""Key-encryption-key providers: the one interface a KMS can implement later.

A provider wraps and unwraps data keys; it never hands out the KEK itself. Two implementations
ship: the keyring file (embedded default) and an environment variable, for deployments that keep
the KEK out of the filesystem.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cmr_vault.crypto.keyring import Keyring, KeyringError, read_keyring

NONCE_BYTES = 12


class KeyUnavailableError(RuntimeError):
    """A KEK is unknown or the provider cannot be reached: fail closed, never fall back."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under one KEK."""

    kek_id: str
    blob: bytes


class KeyProvider(Protocol):
    """What the vault needs from a KEK holder (local file, environment, or a KMS)."""

    def active_kek_id(self) -> str:
        """The KEK new data keys are wrapped under."""
        ...

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        """Seal a data key under the active KEK, bound to `aad`."""
        ...

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        """Open a data key; raises KeyUnavailableError if its KEK is gone or `aad` differs."""
        ...

    def snapshot(self) -> KeyProvider:
        """The KEKs as they are now, for many unwraps in one call (a chunk of a campaign):
        a provider that re-reads its source per call need do so once."""
        ...


def seal_key(key: bytes, payload: bytes, aad: bytes) -> bytes:
    """AES-256-GCM of key material under `key`: a random nonce, then ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, payload, aad)


def open_key(key: bytes, blob: bytes, aad: bytes, *, under: str) -> bytes:
    """What `seal_key` sealed; fails closed (naming what it was sealed `under`) on any mismatch."""
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as exc:
        raise KeyUnavailableError(f"data key failed authentication under its {under}") from exc


class StaticKeyProvider:
    """KEKs held in memory: the ring from the environment, or from a keyring snapshot."""

    def __init__(self, keks: dict[str, bytes], active: str) -> None:
        if active not in keks:
            raise KeyUnavailableError(f"active KEK {active!r} is not in the ring")
        self._keks = dict(keks)
        self._active = active

    def __repr__(self) -> str:
        return f"{type(self).__name__}(active={self._active!r}, keks=[{len(self._keks)} redacted])"

    @classmethod
    def from_env_value(cls, value: str) -> StaticKeyProvider:
        """Parse `id:base64[,id:base64…]`; the first entry is active."""
        keks: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            kek_id, _, encoded = item.partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise KeyUnavailableError(f"CMR_VAULT_KEK: {kek_id!r} is not base64") from exc
            if len(key) != 32:
                raise KeyUnavailableError(f"CMR_VAULT_KEK: {kek_id!r} must be 32 bytes")
            keks[kek_id] = key
        if not keks:
            raise KeyUnavailableError("CMR_VAULT_KEK is empty")
        return cls(keks, next(iter(keks)))

    def active_kek_id(self) -> str:
        return self._active

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        return WrappedKey(self._active, seal_key(self._keks[self._active], data_key, aad))

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        kek = self._keks.get(wrapped.kek_id)
        if kek is None:
            raise KeyUnavailableError(f"KEK {wrapped.kek_id!r} is not known")
        return open_key(kek, wrapped.blob, aad, under="KEK")

    def snapshot(self) -> StaticKeyProvider:
        return self


class KeyringFileProvider:
    """KEKs from the keyring file, re-read when the file changes.

    `cmr-vault keys rotate` writes a new KEK into the file while servers keep running; re-reading
    on change lets every worker wrap under the new KEK and unwrap re-wrapped keys at once.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._ring: Keyring | None = None

    def __repr__(self) -> str:
        return f"KeyringFileProvider(path={str(self._path)!r})"

    def keyring(self) -> Keyring:
        """The current keyring, re-read if the file changed since last time."""
        try:
            stat = self._path.stat()
        except OSError as exc:
            raise KeyUnavailableError(f"keyring {self._path} is unavailable") from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._ring is None or stamp != self._stamp:
                try:
                    self._ring = read_keyring(self._path)
                except KeyringError as exc:
                    raise KeyUnavailableError(str(exc)) from exc
                self._stamp = stamp
            return self._ring

    def _static(self) -> StaticKeyProvider:
        ring = self.keyring()
        return StaticKeyProvider(ring.keks, ring.active_kek_id)

    def active_kek_id(self) -> str:
        return self.keyring().active_kek_id

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        return self._static().wrap(data_key, aad)

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        return self._static().unwrap(wrapped, aad)

    def snapshot(self) -> StaticKeyProvider:
        return self._static()
