"""Sealing profile fields: AES-256-GCM under the owner's data key.

Ciphertext layout: format byte 0x01 | data-key version (4 bytes, big-endian) | 96-bit random
nonce | ciphertext and 128-bit tag. The AAD binds owner, field name and key version, so a
ciphertext copied to another customer's row or another field fails to open (SECURITY.md Q1).
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cmr_vault.crypto.data_keys import DataKey, DataKeyStore
from cmr_vault.crypto.kek import KeyUnavailableError

FORMAT = 1
HEADER = struct.Struct(">BI")
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptionError(RuntimeError):
    """A sealed value did not open. Deliberately says nothing about why."""


def field_aad(owner_id: str, field: str, version: int) -> bytes:
    """The associated data that pins a ciphertext to one owner, field and key version."""
    return f"cmr-vault/field/v1|{owner_id}|{field}|{version}".encode()


def seal(data_key: DataKey, field: str, plaintext: str) -> bytes:
    """Encrypt one field value under an already-opened data key."""
    nonce = os.urandom(NONCE_BYTES)
    aad = field_aad(data_key.owner_id, field, data_key.version)
    body = AESGCM(data_key.key).encrypt(nonce, plaintext.encode("utf-8"), aad)
    return HEADER.pack(FORMAT, data_key.version) + nonce + body


def key_version(blob: bytes) -> int:
    """The data-key version a ciphertext was sealed under."""
    if len(blob) < HEADER.size + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("sealed value is truncated")
    fmt, version = HEADER.unpack_from(blob)
    if fmt != FORMAT:
        raise DecryptionError("sealed value has an unknown format")
    return version


def open_sealed(data_key: DataKey, field: str, blob: bytes) -> str:
    """Decrypt one field value; any tampering or misplacement raises DecryptionError."""
    if key_version(blob) != data_key.version:
        raise DecryptionError("sealed value names another key version")
    nonce = blob[HEADER.size : HEADER.size + NONCE_BYTES]
    aad = field_aad(data_key.owner_id, field, data_key.version)
    try:
        plain = AESGCM(data_key.key).decrypt(nonce, blob[HEADER.size + NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise DecryptionError("sealed value failed authentication") from exc
    return plain.decode("utf-8")


class FieldCipher:
    """Seals and opens many fields of one owner with as few key-store round trips as possible."""

    def __init__(self, data_keys: DataKeyStore) -> None:
        self._data_keys = data_keys

    def seal_fields(self, owner_id: str, values: dict[str, str]) -> dict[str, bytes]:
        """Encrypt every value; one data-key fetch per batch, counted once per field."""
        items = list(values.items())
        step = self._data_keys.max_encryptions
        sealed: dict[str, bytes] = {}
        for start in range(0, len(items), step):
            batch = items[start : start + step]
            data_key = self._data_keys.for_encryption(owner_id, uses=len(batch))
            sealed.update((name, seal(data_key, name, value)) for name, value in batch)
        return sealed

    def open_fields(self, owner_id: str, sealed: dict[str, bytes]) -> dict[str, str]:
        """Decrypt every value; fails closed if the owner's key is gone (erased)."""
        keys: dict[int, DataKey] = {}
        opened: dict[str, str] = {}
        for name, blob in sealed.items():
            version = key_version(blob)
            if version not in keys:
                try:
                    keys[version] = self._data_keys.for_decryption(owner_id, version)
                except KeyUnavailableError as exc:
                    raise DecryptionError("the data key for this value is not available") from exc
            opened[name] = open_sealed(keys[version], name, blob)
        return opened
