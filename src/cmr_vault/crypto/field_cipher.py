"""Sealing profile fields: AES-256-GCM under the owner's data key.

Ciphertext layout: format byte 0x01 | data-key version (4 bytes, big-endian) | 96-bit random
nonce | ciphertext and 128-bit tag. The AAD binds owner, field name and key version, so a
ciphertext copied to another customer's row or another field fails to open (checklist Q1).

A field's name is the customer's words too (custom fields are named by the customer), so a row
holds no name in clear: it is found by a keyed blind index of owner and name, and the name itself
is sealed like the value, its AAD binding owner, that index and key version.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cmr_vault.crypto.blind_index import blind_index
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


def name_aad(owner_id: str, name_index: str, version: int) -> bytes:
    """The associated data that pins a sealed field name to one owner, row and key version."""
    return f"cmr-vault/field-name/v1|{owner_id}|{name_index}|{version}".encode()


def _seal(data_key: DataKey, aad: bytes, plaintext: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(data_key.key).encrypt(nonce, plaintext.encode("utf-8"), aad)
    return HEADER.pack(FORMAT, data_key.version) + nonce + body


def seal(data_key: DataKey, field: str, plaintext: str) -> bytes:
    """Encrypt one field value under an already-opened data key."""
    return _seal(data_key, field_aad(data_key.owner_id, field, data_key.version), plaintext)


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
    return _open(data_key, field_aad(data_key.owner_id, field, data_key.version), blob)


def _open(data_key: DataKey, aad: bytes, blob: bytes) -> str:
    if key_version(blob) != data_key.version:
        raise DecryptionError("sealed value names another key version")
    nonce = blob[HEADER.size : HEADER.size + NONCE_BYTES]
    try:
        plain = AESGCM(data_key.key).decrypt(nonce, blob[HEADER.size + NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise DecryptionError("sealed value failed authentication") from exc
    return plain.decode("utf-8")


@dataclass(frozen=True)
class SealedField:
    """One field as a row stores it: the name's blind index, the sealed name, the sealed value."""

    name_index: str
    sealed_name: bytes
    sealed: bytes


class FieldCipher:
    """Seals and opens many fields of one owner with as few key-store round trips as possible.

    `name_key` keys the blind index of field names (the keyring's index key): rows are found by
    name without the name being stored.
    """

    def __init__(self, data_keys: DataKeyStore, *, name_key: bytes) -> None:
        self._data_keys = data_keys
        self._name_key = name_key

    def name_index(self, owner_id: str, name: str) -> str:
        """The row handle for one owner's field `name`: keyed per owner, so two customers'
        equal custom names do not match."""
        return blind_index(self._name_key, "profile-field-name", f"{owner_id}\x00{name}")

    def seal_named(self, owner_id: str, values: dict[str, str]) -> dict[str, SealedField]:
        """Seal each value and its name (two encryptions a field), ready for a row."""
        names = self.seal_names(owner_id, list(values))
        sealed = self.seal_fields(owner_id, values)
        return {name: SealedField(*names[name], sealed[name]) for name in values}

    def seal_names(self, owner_id: str, names: list[str]) -> dict[str, tuple[str, bytes]]:
        """Each name's row handle (blind index) and sealed name."""
        step = self._data_keys.max_encryptions
        sealed: dict[str, tuple[str, bytes]] = {}
        for start in range(0, len(names), step):
            batch = names[start : start + step]
            data_key = self._data_keys.for_encryption(owner_id, uses=len(batch))
            for name in batch:
                index = self.name_index(owner_id, name)
                aad = name_aad(owner_id, index, data_key.version)
                sealed[name] = (index, _seal(data_key, aad, name))
        return sealed

    def open_names(self, owner_id: str, sealed_names: dict[str, bytes]) -> dict[str, str]:
        """Field names by row handle (name index); fails closed like `open_fields`."""
        keys: dict[int, DataKey] = {}
        return {
            index: _open(self._key(owner_id, blob, keys), name_aad(
                owner_id, index, key_version(blob)), blob)
            for index, blob in sealed_names.items()
        }

    def open_named(self, owner_id: str, rows: Mapping[str, tuple[bytes, bytes]]) -> dict[str, str]:
        """Each row's name and value opened, by row handle (name index) -> (sealed name,
        sealed value): one key-store lookup per key version for names and values together."""
        keys: dict[int, DataKey] = {}
        opened = {}
        for index, (sealed_name, sealed) in rows.items():
            name = _open(self._key(owner_id, sealed_name, keys),
                         name_aad(owner_id, index, key_version(sealed_name)), sealed_name)
            opened[name] = open_sealed(self._key(owner_id, sealed, keys), name, sealed)
        return opened

    def _key(self, owner_id: str, blob: bytes, keys: dict[int, DataKey]) -> DataKey:
        version = key_version(blob)
        if version not in keys:
            try:
                keys[version] = self._data_keys.for_decryption(owner_id, version)
            except KeyUnavailableError as exc:
                raise DecryptionError("the data key for this value is not available") from exc
        return keys[version]

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

    def open_many(self, sealed: dict[tuple[str, str], bytes]) -> dict[tuple[str, str], str]:
        """Open fields of many owners, keyed (owner, field), with one key-store query.

        For bulk decisions (a campaign chunk): each owner's key is unwrapped once. A value whose
        key is gone (an erased customer) or that fails authentication is left out, so one bad
        row never stops the others and nothing unreadable is guessed at.
        """
        versions = {}
        for name, blob in sealed.items():
            try:
                versions[name] = key_version(blob)
            except DecryptionError:
                continue
        keys = self._data_keys.for_decryption_many(
            {(owner_id, version) for (owner_id, _), version in versions.items()})
        opened = {}
        for (owner_id, field), version in versions.items():
            data_key = keys.get((owner_id, version))
            if data_key is None:
                continue
            try:
                opened[(owner_id, field)] = open_sealed(data_key, field,
                                                        sealed[(owner_id, field)])
            except DecryptionError:
                continue
        return opened

    def open_fields(self, owner_id: str, sealed: dict[str, bytes]) -> dict[str, str]:
        """Decrypt every value; fails closed if the owner's key is gone (erased)."""
        keys: dict[int, DataKey] = {}
        return {name: open_sealed(self._key(owner_id, blob, keys), name, blob)
                for name, blob in sealed.items()}
