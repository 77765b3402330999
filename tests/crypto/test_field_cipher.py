"""Field sealing: AAD binding, tamper detection, key versions and usage limits (SECURITY Q1–Q6)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine

from cmr_vault.crypto.data_keys import DataKeyMissingError, DataKeyStore
from cmr_vault.crypto.epochs import EpochKeyFile
from cmr_vault.crypto.field_cipher import DecryptionError, FieldCipher, key_version
from cmr_vault.crypto.kek import KeyUnavailableError, StaticKeyProvider, WrappedKey


@pytest.fixture
def provider() -> StaticKeyProvider:
    return StaticKeyProvider({"kek-a": os.urandom(32)}, "kek-a")


def _store(tmp_path, provider, max_encryptions: int = 1000) -> DataKeyStore:
    engine = create_engine(f"sqlite:///{tmp_path / 'keystore.db'}")
    store = DataKeyStore(engine=engine, provider=provider, max_encryptions=max_encryptions,
                         epochs=EpochKeyFile(tmp_path / "epoch-keys.json"))
    store.create_schema()
    return store


@pytest.fixture
def cipher(tmp_path, provider) -> FieldCipher:
    store = _store(tmp_path, provider)
    store.create("alice")
    store.create("bob")
    return FieldCipher(store, name_key=os.urandom(32))


def test_sealed_field_opens_for_its_owner_and_field(cipher: FieldCipher) -> None:
    sealed = cipher.seal_fields("alice", {"email": "alice@example.org"})
    assert cipher.open_fields("alice", sealed) == {"email": "alice@example.org"}
    assert b"alice@example.org" not in sealed["email"]


def test_ciphertext_copied_to_another_customer_fails(cipher: FieldCipher) -> None:
    sealed = cipher.seal_fields("alice", {"email": "alice@example.org"})
    with pytest.raises(DecryptionError):
        cipher.open_fields("bob", sealed)


def test_ciphertext_moved_to_another_field_fails(cipher: FieldCipher) -> None:
    sealed = cipher.seal_fields("alice", {"email": "alice@example.org"})
    with pytest.raises(DecryptionError):
        cipher.open_fields("alice", {"phone": sealed["email"]})


def test_a_sealed_field_name_opens_only_in_its_own_row(cipher: FieldCipher) -> None:
    sealed = cipher.seal_named("alice", {"custom.diagnosis": "x", "custom.note": "y"})
    diagnosis, note = sealed["custom.diagnosis"], sealed["custom.note"]
    assert b"diagnosis" not in diagnosis.sealed_name + diagnosis.name_index.encode()
    assert cipher.open_names("alice", {diagnosis.name_index: diagnosis.sealed_name}) == {
        diagnosis.name_index: "custom.diagnosis"}
    with pytest.raises(DecryptionError):
        cipher.open_names("alice", {note.name_index: diagnosis.sealed_name})
    with pytest.raises(DecryptionError):
        cipher.open_names("bob", {diagnosis.name_index: diagnosis.sealed_name})


def test_equal_field_names_of_two_customers_have_unrelated_row_handles(
    cipher: FieldCipher,
) -> None:
    assert cipher.name_index("alice", "custom.note") != cipher.name_index("bob", "custom.note")


@pytest.mark.parametrize("position", [0, 3, 5, 10, 17, 20, -1])
def test_any_flipped_bit_is_detected(cipher: FieldCipher, position: int) -> None:
    sealed = bytearray(cipher.seal_fields("alice", {"email": "alice@example.org"})["email"])
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionError):
        cipher.open_fields("alice", {"email": bytes(sealed)})


def test_truncated_tag_is_rejected(cipher: FieldCipher) -> None:
    sealed = cipher.seal_fields("alice", {"email": "alice@example.org"})["email"]
    with pytest.raises(DecryptionError):
        cipher.open_fields("alice", {"email": sealed[:-4]})


def test_unknown_key_version_is_a_clean_error(cipher: FieldCipher) -> None:
    sealed = bytearray(cipher.seal_fields("alice", {"email": "x@example.org"})["email"])
    sealed[1:5] = (99).to_bytes(4, "big")
    with pytest.raises(DecryptionError, match="not available"):
        cipher.open_fields("alice", {"email": bytes(sealed)})


def test_nonces_never_repeat(cipher: FieldCipher) -> None:
    values = {f"custom.f{i}": "same value" for i in range(20_000)}
    sealed = cipher.seal_fields("alice", values)
    nonces = {blob[5:17] for blob in sealed.values()}
    assert len(nonces) == len(values)


def test_spent_data_key_is_replaced_by_a_new_version(tmp_path, provider) -> None:
    store = _store(tmp_path, provider, max_encryptions=100)
    store.create("alice")
    cipher = FieldCipher(store, name_key=os.urandom(32))
    first = cipher.seal_fields("alice", {f"custom.a{i}": "v" for i in range(100)})
    second = cipher.seal_fields("alice", {"email": "alice@example.org"})
    assert {key_version(b) for b in first.values()} == {1}
    assert key_version(second["email"]) == 2
    assert cipher.open_fields("alice", {**first, **second})["email"] == "alice@example.org"


def test_missing_data_key_refuses_to_seal(tmp_path, provider) -> None:
    cipher = FieldCipher(_store(tmp_path, provider), name_key=os.urandom(32))
    with pytest.raises(DataKeyMissingError):
        cipher.seal_fields("nobody", {"email": "x@example.org"})


class UnreachableKms:
    """A key provider whose KMS is down."""

    def active_kek_id(self) -> str:
        raise KeyUnavailableError("KMS unreachable")

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        raise KeyUnavailableError("KMS unreachable")

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        raise KeyUnavailableError("KMS unreachable")

    def snapshot(self) -> UnreachableKms:
        return self


def test_unreachable_kms_fails_closed(tmp_path, provider) -> None:
    store = _store(tmp_path, provider)
    store.create("alice")
    name_key = os.urandom(32)
    sealed = FieldCipher(store, name_key=name_key).seal_fields(
        "alice", {"email": "alice@example.org"})
    down = DataKeyStore(engine=store._engine, provider=UnreachableKms(), max_encryptions=1000,
                        epochs=EpochKeyFile(tmp_path / "epoch-keys.json"))
    with pytest.raises(KeyUnavailableError):
        FieldCipher(down, name_key=name_key).seal_fields("alice", {"email": "new@example.org"})
    with pytest.raises(DecryptionError):
        FieldCipher(down, name_key=name_key).open_fields("alice", sealed)
    with pytest.raises(KeyUnavailableError):
        down.create("carol")
