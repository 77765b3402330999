"""Erasure leaves nothing in the key store's bytes that opens a copy of the erased customer.

The attacker these tests play holds a copy of the main database taken before the erasure, a
file-level copy of the key store taken after it, and every key the vault still holds (the KEKs,
the epoch keys, the other customers' data keys). They try each key against every window of the
key store's bytes, in both wrapping formats, with the erased customer's associated data.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    make_url,
    text,
)
from sqlmodel import Session, col, select

from cmr_vault import cli
from cmr_vault.accounts.models import Account
from cmr_vault.crypto.data_keys import DataKey
from cmr_vault.crypto.field_cipher import DecryptionError, open_sealed, seal
from cmr_vault.crypto.kek import StaticKeyProvider
from cmr_vault.crypto.keyring import read_keyring
from cmr_vault.db.engine import make_engine
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from cmr_vault.vault import service as vault_service
from cmr_vault.vault.models import ProfileField
from cmr_vault.vault.shredding import shred_once
from tests.conftest import ClockUnderTest, _admin_url
from tests.factories import DEFAULT_PASSWORD, Browser

NONCE = 12
TAG = 16
DATA_KEY = 32
KEK_WRAPPED = NONCE + DATA_KEY + TAG
EPOCH_SEALED = NONCE + KEK_WRAPPED + TAG


@pytest.fixture
def keystore_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The key store on the same engine as the main database: SQLite file or own database."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys' / 'keystore.db'}"
        return
    name = f"cmr_k_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_admin_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield _admin_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(settings: Settings, keystore_url: str) -> Settings:
    return settings.model_copy(update={"keystore_url": keystore_url})


@dataclass(frozen=True)
class Erased:
    """The erased customer, as a pre-erasure copy of the main database shows them."""

    account_id: str
    given_name_sealed: bytes
    stored: bytes = b""
    """Her data key as the key store held it (epoch-sealed)."""
    kek_wrapped: bytes = b""
    """The same key inside the epoch seal: wrapped by the KEK alone."""


@pytest.fixture
def erased(
    client: TestClient[Litestar], other_client: TestClient[Litestar], db_session: Session,
    settings: Settings, runtime: Runtime,
) -> Erased:
    """Rosa fills her profile and erases herself; Bea, a bystander, stays.

    Before the erasure the scan must find Rosa's key: a scan that cannot see a live key proves
    nothing about an erased one.
    """
    rosa = Browser(client)
    rosa.sign_up("rosa@example.org")
    rosa.submit("/profile", {"email": "rosa@example.org", "given_name": "Rosa"})
    account_id = db_session.exec(select(Account.id)).one()
    bea = Browser(other_client)
    bea.sign_up("bea@example.org")
    bea.submit("/profile", {"email": "bea@example.org", "given_name": "Bea"})
    copy = db_session.exec(
        select(ProfileField.sealed).where(
            col(ProfileField.account_id) == account_id,
            col(ProfileField.name_index) == runtime.cipher.name_index(account_id, "given_name"),
        )
    ).one()
    db_session.rollback()
    keks = list(read_keyring(settings.resolved_key_file).keks.values())
    stored, epoch_id = _stored_key(settings, account_id)
    epoch_aad = f"cmr-vault/data-key-epoch/v1|{account_id}|1|{epoch_id}".encode()
    kek_wrapped = (_try(_epoch_keys(settings)[epoch_id], stored, epoch_aad) or b""
                   if epoch_id else stored)
    rosa_before = Erased(account_id, copy, stored, kek_wrapped)
    live = HeldKeys(keks=keks, epoch_keys=_epoch_keys(settings), data_keys=[])
    assert _openings(_key_store_bytes(settings), live, set(live.epoch_keys), rosa_before)
    response = rosa.submit(
        "/erase", {"confirm": "erase my data", "password": DEFAULT_PASSWORD}, page="/erase"
    )
    assert response.status_code == 200
    assert "Bea" in other_client.get("/profile").text
    return rosa_before


def _stored_key(settings: Settings, account_id: str) -> tuple[bytes, str | None]:
    engine = make_engine(settings.keystore_url, immediate=False)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM data_key WHERE owner_id = :o AND version = 1"),
                           {"o": account_id}).one()
    engine.dispose()
    return bytes(row.wrapped), getattr(row, "epoch_id", None)


def _key_store_bytes(settings: Settings) -> dict[str, bytes]:
    """Every byte of the key store: its files on SQLite, its tables' raw pages on PostgreSQL."""
    url = make_url(settings.keystore_url)
    if url.get_backend_name() == "sqlite":
        main = Path(url.database or "")
        files = [main, *(main.with_name(main.name + tail) for tail in ("-wal", "-shm", "-journal"))]
        return {f.name: f.read_bytes() for f in files if f.exists()}
    pages: dict[str, bytes] = {}
    engine = create_engine(url.render_as_string(hide_password=False).replace(
        "postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        relations = conn.execute(text(
            "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relname IN ('data_key', "
            "'key_epoch') UNION SELECT c.reltoastrelid::regclass::text FROM pg_class c "
            "WHERE c.relname = 'data_key' AND c.reltoastrelid <> 0"
        )).scalars().all()
        for relation in relations:
            blocks = conn.execute(
                text("SELECT pg_relation_size(CAST(:r AS regclass)) / 8192"), {"r": relation}
            ).scalar_one()
            for block in range(blocks):
                pages[f"{relation}/{block}"] = conn.execute(
                    text("SELECT get_raw_page(:r, :b)"), {"r": relation, "b": block}
                ).scalar_one()
    engine.dispose()
    return pages


@dataclass
class HeldKeys:
    """Every key the vault still holds, and every epoch id the attacker has seen."""

    keks: list[bytes]
    epoch_keys: dict[str, bytes]
    data_keys: list[bytes]

    def all(self) -> list[bytes]:
        return [*self.keks, *self.epoch_keys.values(), *self.data_keys]


def _epoch_keys(settings: Settings) -> dict[str, bytes]:
    path = settings.resolved_epoch_key_file
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {k: base64.b64decode(v) for k, v in raw["keys"].items()}


def _held_keys(settings: Settings, runtime: Runtime, db_session: Session) -> HeldKeys:
    db_session.rollback()
    others = db_session.exec(select(Account.id)).all()
    return HeldKeys(
        keks=list(read_keyring(settings.resolved_key_file).keks.values()),
        epoch_keys=_epoch_keys(settings),
        data_keys=[runtime.data_keys.for_decryption(other, 1).key for other in others],
    )


def _try(key: bytes, blob: bytes, aad: bytes) -> bytes | None:
    try:
        return AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], aad)
    except InvalidTag:
        return None


def _opens_copy(data_key: bytes, erased: Erased) -> bool:
    try:
        open_sealed(DataKey(erased.account_id, 1, data_key), "given_name", erased.given_name_sealed)
    except DecryptionError:
        return False
    return True


def _openings(
    chunks: dict[str, bytes], keys: HeldKeys, epoch_ids: set[str], erased: Erased
) -> list[str]:
    """Where in `chunks` some held key opens the erased customer's data key."""
    kek_aad = f"cmr-vault/data-key/v1|{erased.account_id}|1".encode()
    epoch_aads = {e: f"cmr-vault/data-key-epoch/v1|{erased.account_id}|1|{e}".encode()
                  for e in epoch_ids}
    candidates = keys.all()
    found = []
    for name, data in chunks.items():
        for at in range(len(data) - KEK_WRAPPED + 1):
            wrapped = data[at : at + KEK_WRAPPED]
            for key in candidates:
                inner = _try(key, wrapped, kek_aad)
                if inner is not None and _opens_copy(inner, erased):
                    found.append(f"{name}@{at}: KEK-wrapped")
            sealed = data[at : at + EPOCH_SEALED]
            if len(sealed) < EPOCH_SEALED:
                continue
            for key in candidates:
                for aad in epoch_aads.values():
                    inner_wrapped = _try(key, sealed, aad)
                    for kek in keys.keks if inner_wrapped else []:
                        inner = _try(kek, inner_wrapped, kek_aad)
                        if inner is not None and _opens_copy(inner, erased):
                            found.append(f"{name}@{at}: epoch-sealed")
    return found


@pytest.fixture
def seen_epochs(settings: Settings) -> set[str]:
    """Epoch ids are written in plain text beside each sealed key; the attacker knows them all."""
    return set(_epoch_keys(settings))


def test_right_after_erasure_only_the_epoch_key_due_for_destruction_could_open_a_residue(
    erased: Erased, seen_epochs: set[str], settings: Settings, runtime: Runtime,
    db_session: Session, clock: ClockUnderTest,
) -> None:
    due = runtime.data_keys.shred_due()
    assert due is not None
    assert due <= clock.now() + timedelta(seconds=settings.erasure_shred_seconds)
    keys = _held_keys(settings, runtime, db_session)
    doomed = set(keys.epoch_keys)
    spared = HeldKeys(keks=keys.keks, epoch_keys={}, data_keys=keys.data_keys)
    assert _openings(_key_store_bytes(settings), spared, seen_epochs | doomed, erased) == []


def test_on_sqlite_no_byte_of_the_key_store_files_opens_the_erased_key_at_once(
    erased: Erased, seen_epochs: set[str], settings: Settings, runtime: Runtime,
    db_session: Session,
) -> None:
    if make_url(settings.keystore_url).get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL keeps dead tuples; there the epoch key's destruction protects")
    keys = _held_keys(settings, runtime, db_session)
    assert _openings(_key_store_bytes(settings), keys, seen_epochs | set(keys.epoch_keys),
                     erased) == []


def test_after_the_shred_delay_no_key_the_vault_holds_opens_the_erased_key(
    erased: Erased, seen_epochs: set[str], settings: Settings, runtime: Runtime,
    db_session: Session, clock: ClockUnderTest, client: TestClient[Litestar],
    other_client: TestClient[Litestar],
) -> None:
    before = set(_epoch_keys(settings))
    assert shred_once(runtime).destroyed == []
    clock.advance(seconds=settings.erasure_shred_seconds)
    report = shred_once(runtime)
    assert sorted(before) == report.destroyed
    assert runtime.data_keys.shred_due() is None
    keys = _held_keys(settings, runtime, db_session)
    assert not before & set(keys.epoch_keys)
    assert _openings(_key_store_bytes(settings), keys, seen_epochs | set(keys.epoch_keys),
                     erased) == []
    assert "Bea" in other_client.get("/profile").text


def test_keys_shred_now_destroys_the_erased_keys_epoch_at_once(
    erased: Erased, seen_epochs: set[str], settings: Settings, runtime: Runtime,
    db_session: Session, cli_env: None, other_client: TestClient[Litestar],
) -> None:
    result = CliRunner().invoke(cli.main, ["keys", "shred-now"])
    assert result.exit_code == 0, result.output
    keys = _held_keys(settings, runtime, db_session)
    assert not seen_epochs & set(keys.epoch_keys)
    assert _openings(_key_store_bytes(settings), keys, seen_epochs | set(keys.epoch_keys),
                     erased) == []
    assert "Bea" in other_client.get("/profile").text
    bea = db_session.exec(select(Account.id)).one()
    profile = vault_service.read_profile(db_session, cipher=runtime.cipher, account_id=bea)
    assert profile.standard["given_name"] == "Bea"


def _old_key_store(settings: Settings, owner_id: str, data_key: bytes) -> None:
    """A key store as the vault wrote it before epochs: KEK-wrapped keys, no epoch column."""
    metadata = MetaData()
    old = Table(
        "data_key", metadata,
        Column("owner_id", String(64), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("kek_id", String(64), nullable=False, index=True),
        Column("wrapped", LargeBinary, nullable=False),
        Column("encryptions", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    ring = read_keyring(settings.resolved_key_file)
    wrapped = StaticKeyProvider(ring.keks, ring.active_kek_id).wrap(
        data_key, f"cmr-vault/data-key/v1|{owner_id}|1".encode())
    engine = make_engine(settings.keystore_url, immediate=False)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(old).values(
            owner_id=owner_id, version=1, kek_id=wrapped.kek_id, wrapped=wrapped.blob,
            encryptions=1, created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    engine.dispose()


def test_upgrading_an_old_key_store_seals_every_key_and_leaves_no_bare_copy(
    settings: Settings, cli_env: None
) -> None:
    owner_id = "legacy-owner"
    data_key = os.urandom(DATA_KEY)
    _old_key_store(settings, owner_id, data_key)
    legacy = Erased(owner_id, seal(DataKey(owner_id, 1, data_key), "given_name", "Old"))
    keks = HeldKeys(keks=list(read_keyring(settings.resolved_key_file).keks.values()),
                    epoch_keys={}, data_keys=[])
    assert _openings(_key_store_bytes(settings), keks, set(), legacy)

    result = CliRunner().invoke(cli.main, ["init"])

    assert result.exit_code == 0, result.output
    runtime = Runtime.build(settings)
    assert runtime.data_keys.for_decryption(owner_id, 1).key == data_key
    runtime.dispose()
    epoch_keys = _epoch_keys(settings)
    found = _openings(_key_store_bytes(settings), replace(keks, epoch_keys=epoch_keys),
                      set(epoch_keys), legacy)
    assert found
    assert [place for place in found if place.endswith("KEK-wrapped")] == []


def test_a_key_store_without_its_epoch_key_file_is_refused_at_start(
    settings: Settings, cli_env: None
) -> None:
    assert CliRunner().invoke(cli.main, ["init"]).exit_code == 0
    settings.resolved_epoch_key_file.unlink()

    result = CliRunner().invoke(cli.main, ["init"])

    assert result.exit_code != 0
    assert "epoch-key file" in result.output


@pytest.fixture
def wal_start(settings: Settings) -> str:
    """The WAL segment in use before the test writes anything (PostgreSQL, server files)."""
    if make_url(settings.keystore_url).get_backend_name() == "sqlite":
        pytest.skip("SQLite's WAL is truncated at erasure: see the tests above")
    with make_engine(settings.keystore_url).connect() as conn:
        data_dir = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        segment = conn.execute(text("SELECT pg_walfile_name(pg_current_wal_lsn())")).scalar_one()
    if not os.access(data_dir / "pg_wal", os.R_OK):
        pytest.skip("the PostgreSQL server's pg_wal is not readable from here")
    return str(data_dir / "pg_wal" / segment)


def test_postgresql_wal_holds_the_erased_key_only_sealed_under_a_destroyed_epoch_key(
    wal_start: str, erased: Erased, seen_epochs: set[str], settings: Settings,
    runtime: Runtime, db_session: Session, cli_env: None,
) -> None:
    result = CliRunner().invoke(cli.main, ["keys", "shred-now"])
    assert result.exit_code == 0, result.output
    first = Path(wal_start)
    wal = b"".join(f.read_bytes() for f in sorted(first.parent.glob("0*"))
                   if len(f.name) == 24 and f.name >= first.name)
    assert erased.kek_wrapped
    assert erased.kek_wrapped not in wal
    copies = []
    at = wal.find(erased.stored)
    while at != -1:
        copies.append(at)
        at = wal.find(erased.stored, at + 1)
    assert copies
    keys = _held_keys(settings, runtime, db_session)
    for at in copies:
        chunk = {f"wal@{at}": wal[at : at + EPOCH_SEALED]}
        assert _openings(chunk, keys, seen_epochs | set(keys.epoch_keys), erased) == []
