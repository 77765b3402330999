"""Per-customer data keys, kept in a key store apart from the main database.

Why apart: erasure destroys a customer's data key (crypto-shredding). If the wrapped key sat in
the main database, a copy of that database taken before the erasure, plus the KEK, would still
open the customer's fields. With the key store elsewhere (its own SQLite file under
`var/keys/`, or its own database/KMS in production), destroying the key there makes every copy
of the main database unreadable for that customer.

Each data key has versions: a version is retired for encryption after
`max_encryptions` uses, far below the 2^32 random-nonce limit of AES-GCM (NIST SP 800-38D §8.3).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)

from cmr_vault.crypto.kek import KeyProvider, KeyUnavailableError, WrappedKey
from cmr_vault.db.engine import IMMEDIATE_OPTION

keystore_metadata = MetaData()

data_key_table = Table(
    "data_key",
    keystore_metadata,
    Column("owner_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kek_id", String(64), nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("encryptions", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class DataKeyMissingError(KeyUnavailableError):
    """The owner's data key does not exist: never created, or destroyed by erasure."""


@dataclass(frozen=True, repr=False)
class DataKey:
    """One unwrapped data key version. Lives only for the duration of a call."""

    owner_id: str
    version: int
    key: bytes

    def __repr__(self) -> str:
        return f"DataKey(owner_id={self.owner_id!r}, version={self.version}, key=<redacted>)"


@dataclass(frozen=True)
class RewrapReport:
    """What `keys rotate` did."""

    rewrapped: int
    already_current: int
    active_kek_id: str


def _aad(owner_id: str, version: int) -> bytes:
    return f"cmr-vault/data-key/v1|{owner_id}|{version}".encode()


class DataKeyStore:
    """Creates, opens, counts, re-wraps and destroys data keys."""

    def __init__(self, *, engine: Engine, provider: KeyProvider, max_encryptions: int) -> None:
        self._engine = engine
        self._provider = provider
        self._max_encryptions = max_encryptions

    def create_schema(self) -> None:
        """The key store has one table and no history, so it is created, not migrated."""
        keystore_metadata.create_all(self._engine)

    def create(self, owner_id: str) -> None:
        """Make the first data key version for a new owner."""
        self._insert_version(owner_id, 1)

    def _insert_version(self, owner_id: str, version: int) -> None:
        wrapped = self._provider.wrap(secrets.token_bytes(32), _aad(owner_id, version))
        with self._engine.begin() as conn:
            conn.execute(
                insert(data_key_table).values(
                    owner_id=owner_id,
                    version=version,
                    kek_id=wrapped.kek_id,
                    wrapped=wrapped.blob,
                    encryptions=0,
                    created_at=datetime.now(UTC),
                )
            )

    @property
    def max_encryptions(self) -> int:
        """How many encryptions one key version may perform."""
        return self._max_encryptions

    def for_encryption(self, owner_id: str, uses: int = 1) -> DataKey:
        """The newest key version, counting `uses` encryptions; a fresh version when spent."""
        if not 1 <= uses <= self._max_encryptions:
            raise ValueError(f"one key version performs 1 to {self._max_encryptions} encryptions")
        with self._engine.connect() as conn, conn.execution_options(
                **{IMMEDIATE_OPTION: True}).begin():
            row = conn.execute(
                select(data_key_table)
                .where(data_key_table.c.owner_id == owner_id)
                .order_by(data_key_table.c.version.desc())
                .limit(1)
            ).one_or_none()
            if row is None:
                raise DataKeyMissingError(f"no data key for owner {owner_id}")
            if row.encryptions + uses <= self._max_encryptions:
                conn.execute(
                    update(data_key_table)
                    .where(
                        and_(
                            data_key_table.c.owner_id == owner_id,
                            data_key_table.c.version == row.version,
                        )
                    )
                    .values(encryptions=data_key_table.c.encryptions + uses)
                )
                return self._unwrap(row)
        self._insert_version(owner_id, row.version + 1)
        return self.for_encryption(owner_id, uses)

    def for_decryption(self, owner_id: str, version: int) -> DataKey:
        """A specific key version, as named in a ciphertext's header."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(data_key_table).where(
                    data_key_table.c.owner_id == owner_id, data_key_table.c.version == version
                )
            ).one_or_none()
        if row is None:
            raise DataKeyMissingError(f"no data key version {version} for owner {owner_id}")
        return self._unwrap(row)

    def _unwrap(self, row: Row[Any]) -> DataKey:
        wrapped = WrappedKey(row.kek_id, row.wrapped)
        key = self._provider.unwrap(wrapped, _aad(row.owner_id, row.version))
        return DataKey(row.owner_id, row.version, key)

    def destroy(self, owner_id: str) -> int:
        """Crypto-shred: delete every version of the owner's key. Returns versions destroyed."""
        with self._engine.begin() as conn:
            return conn.execute(
                delete(data_key_table).where(data_key_table.c.owner_id == owner_id)
            ).rowcount

    def kek_usage(self) -> dict[str, int]:
        """How many data key versions each KEK wraps."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(data_key_table.c.kek_id, func.count()).group_by(data_key_table.c.kek_id)
            ).all()
        return {str(kek_id): int(count) for kek_id, count in rows}

    def rewrap_all(
        self, *, batch_size: int = 500, progress: Callable[[int, int], None] | None = None
    ) -> RewrapReport:
        """Re-wrap every data key not under the active KEK, in small transactions.

        Each batch commits on its own and each row is updated only if its KEK is still the one
        read, so the vault keeps serving (and creating keys) while this runs.
        """
        active = self._provider.active_kek_id()
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(data_key_table)).scalar_one()
            current = conn.execute(
                select(func.count()).where(data_key_table.c.kek_id == active)
            ).scalar_one()
        done = 0
        while True:
            with self._engine.begin() as conn:
                rows = conn.execute(
                    select(data_key_table)
                    .where(data_key_table.c.kek_id != active)
                    .limit(batch_size)
                ).all()
                for row in rows:
                    self._rewrap_row(conn, row, active)
            done += len(rows)
            if progress:
                progress(current + done, total)
            if len(rows) < batch_size:
                return RewrapReport(rewrapped=done, already_current=current, active_kek_id=active)

    def _rewrap_row(self, conn: Connection, row: Row[Any], active: str) -> None:
        aad = _aad(row.owner_id, row.version)
        key = self._provider.unwrap(WrappedKey(row.kek_id, row.wrapped), aad)
        wrapped = self._provider.wrap(key, aad)
        if wrapped.kek_id != active:
            raise KeyUnavailableError("the active KEK changed during rotation; run it again")
        conn.execute(
            update(data_key_table)
            .where(
                data_key_table.c.owner_id == row.owner_id,
                data_key_table.c.version == row.version,
                data_key_table.c.kek_id == row.kek_id,
            )
            .values(kek_id=wrapped.kek_id, wrapped=wrapped.blob)
        )
