"""Per-customer data keys, kept in a key store apart from the main database.

Why apart: erasure destroys a customer's data key (crypto-shredding). If the wrapped key sat in
the main database, a copy of that database taken before the erasure, plus the KEK, would still
open the customer's fields. With the key store elsewhere (its own SQLite file under
`var/keys/`, or its own database/KMS in production), destroying the key there makes every copy
of the main database unreadable for that customer.

Deleting a row does not erase its bytes, so each KEK-wrapped key is sealed again under the
current epoch key (`crypto.epochs`), which lives outside any database. Erasure deletes the rows
(on SQLite with `secure_delete` and a truncating WAL checkpoint, so no byte of them stays in the
key store's files) and schedules `shred`: within `erasure_shred_seconds` every remaining key is
re-sealed under a new epoch key and the old one destroyed, which turns whatever residue the
database keeps (PostgreSQL's dead tuples and WAL) into ciphertext under a key that is gone.

Each data key has versions: a version is retired for encryption after
`max_encryptions` uses, far below the 2^32 random-nonce limit of AES-GCM (NIST SP 800-38D §8.3).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

from cmr_vault.crypto import epochs
from cmr_vault.crypto.epochs import EpochKeyFile, EpochKeyMissingError
from cmr_vault.crypto.kek import KeyProvider, KeyUnavailableError, WrappedKey
from cmr_vault.db.engine import IMMEDIATE_OPTION
from cmr_vault.db.types import UTCDateTime

log = logging.getLogger(__name__)

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
    # The epoch key `wrapped` is sealed under; NULL only in a key store written before epochs
    # existed, until `create_schema` seals those rows.
    Column("epoch_id", String(64), nullable=True),
)

# One row (slot 1): which epoch key seals new and re-sealed data keys, and when the next
# erasure-driven rotation is due. It names epoch keys, it never holds one.
key_epoch_table = Table(
    "key_epoch",
    keystore_metadata,
    Column("slot", Integer, primary_key=True),
    Column("current", String(64), nullable=False),
    Column("shred_due", UTCDateTime(), nullable=True),
)


_VERSION_QUERY = select(data_key_table).where(
    data_key_table.c.owner_id == bindparam("owner_id"),
    data_key_table.c.version == bindparam("version"))


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


@dataclass(frozen=True)
class ShredReport:
    """What `shred` did: whether a new epoch began, and which epoch keys are gone."""

    rotated: bool
    resealed: int
    destroyed: list[str]
    current_epoch: str


def _aad(owner_id: str, version: int) -> bytes:
    return f"cmr-vault/data-key/v1|{owner_id}|{version}".encode()


def _epoch_aad(owner_id: str, version: int, epoch_id: str) -> bytes:
    return f"cmr-vault/data-key-epoch/v1|{owner_id}|{version}|{epoch_id}".encode()


def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
    # SQLite overwrites deleted rows and freed pages with zeros instead of leaving them in
    # free space: an erased key's bytes leave the file, not just the table.
    dbapi_connection.execute("PRAGMA secure_delete=ON")


class OpenedKeys:
    """A bounded, in-process memory of unwrapped data keys, keyed by the stored row itself.

    The key is owner, version, KEK id, epoch id and the sealed bytes as the key store holds
    them now, so an entry is only ever found by a caller that has just read that very row from
    the key store: erasure deletes the row (no lookup can find it), and a re-wrap or an epoch
    re-seal changes the bytes (the old entry is never matched again and ages out). What this
    saves is the two AES-GCM openings (epoch seal, then KEK) per read, never the look-up.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[tuple[object, ...], DataKey] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _identity(row: Row[Any]) -> tuple[object, ...]:
        return (row.owner_id, row.version, row.kek_id, row.epoch_id, bytes(row.wrapped))

    def get(self, row: Row[Any]) -> DataKey | None:
        """The key unwrapped earlier from exactly these stored bytes, if still remembered."""
        identity = self._identity(row)
        with self._lock:
            key = self._keys.get(identity)
            if key is not None:
                self._keys.move_to_end(identity)
            return key

    def put(self, row: Row[Any], key: DataKey) -> DataKey:
        """Remember `key` as unwrapped from `row`, forgetting the least recently used."""
        if self._capacity:
            with self._lock:
                self._keys[self._identity(row)] = key
                while len(self._keys) > self._capacity:
                    self._keys.popitem(last=False)
        return key

    def forget(self, owner_id: str) -> None:
        """Drop every version of one owner (erasure in this process: no copy stays here)."""
        with self._lock:
            for identity in [i for i in self._keys if i[0] == owner_id]:
                del self._keys[identity]


class DataKeyStore:
    """Creates, opens, counts, re-wraps and destroys data keys."""

    def __init__(
        self,
        *,
        engine: Engine,
        provider: KeyProvider,
        epochs: EpochKeyFile,
        max_encryptions: int,
        shred_delay: timedelta = timedelta(hours=1),
        opened_keys: int = 4096,
    ) -> None:
        self._engine = engine
        self._provider = provider
        self._epochs = epochs
        self._max_encryptions = max_encryptions
        self._shred_delay = shred_delay
        self._opened = OpenedKeys(opened_keys)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _secure_delete)

    def create_schema(self) -> None:
        """Create the key store's tables, or bring an older key store up to date.

        The key store has no migration history: a store from before epochs gets the `epoch_id`
        column and its rows sealed under the first epoch key. On PostgreSQL the table is then
        rewritten (`_rewrite_table`), so the unsealed old tuples leave its files.
        """
        keystore_metadata.create_all(self._engine)
        self._add_epoch_column()
        self._ensure_epoch()
        # Refuse to start without the current epoch key (a key store restored or moved without
        # its epoch-key file) rather than fail on every read.
        current = self._current_epoch_id()
        if current not in self._epochs.held():
            raise EpochKeyMissingError(
                f"the key store's current epoch key {current!r} is not in {self._epochs.path}: "
                "restore the epoch-key file that was backed up with this key store"
            )
        with self._engine.connect() as conn:
            unsealed = conn.execute(
                select(func.count()).where(data_key_table.c.epoch_id.is_(None))
            ).scalar_one()
        if unsealed:
            with self._epochs.changing():
                self._reseal_all(self._current_epoch_id())
            self._compact()
            if self._engine.dialect.name == "postgresql":
                self._rewrite_table()

    def _rewrite_table(self) -> None:
        """Move the (now sealed) rows into a fresh file, dropping the unsealed old tuples.

        They would open with the KEK alone. VACUUM FULL keeps a dead tuple that any open
        transaction might still see; TRUNCATE drops the table's old file whatever is open, so
        the live rows go through a temporary copy in the same transaction. Old WAL segments and
        archives keep the unsealed tuples until they are recycled or deleted.
        """
        with self._engine.begin() as conn:
            # Locked first: a key created between the copy and the TRUNCATE would be lost.
            conn.execute(text("LOCK TABLE data_key IN ACCESS EXCLUSIVE MODE"))
            conn.execute(text("CREATE TEMPORARY TABLE data_key_copy ON COMMIT DROP AS "
                              "SELECT * FROM data_key"))
            conn.execute(text("TRUNCATE data_key"))
            conn.execute(text("INSERT INTO data_key SELECT * FROM data_key_copy"))

    def _add_epoch_column(self) -> None:
        if "epoch_id" in {c["name"] for c in inspect(self._engine).get_columns("data_key")}:
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(text("ALTER TABLE data_key ADD COLUMN epoch_id VARCHAR(64)"))
        except DBAPIError:
            # Another process added it at the same moment; anything else shows up below.
            if "epoch_id" not in {c["name"] for c in inspect(self._engine).get_columns("data_key")}:
                raise

    def _ensure_epoch(self) -> None:
        with self._engine.connect() as conn:
            if conn.execute(select(key_epoch_table.c.current)).first() is not None:
                return
        with self._epochs.changing(), self._writing() as conn:
            if conn.execute(select(key_epoch_table.c.current)).first() is None:
                conn.execute(insert(key_epoch_table).values(slot=1, current=self._epochs.add()))

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction that holds SQLite's write lock from its first statement."""
        with self._engine.connect() as conn, conn.execution_options(
                **{IMMEDIATE_OPTION: True}).begin():
            yield conn

    def _current_epoch_id(self, conn: Connection | None = None) -> str:
        """The epoch new seals use; inside a write, share-locked so a rotation waits for it."""
        query = select(key_epoch_table.c.current).where(key_epoch_table.c.slot == 1)
        if conn is None:
            with self._engine.connect() as fresh:
                epoch_id = fresh.execute(query).scalar_one_or_none()
        else:
            epoch_id = conn.execute(query.with_for_update(read=True)).scalar_one_or_none()
        if epoch_id is None:
            raise KeyUnavailableError("the key store has no epoch key yet: run create_schema")
        return str(epoch_id)

    def _sealed(self, owner_id: str, version: int, wrapped: WrappedKey, epoch_id: str
                ) -> dict[str, Any]:
        blob = epochs.seal(
            self._epochs.key(epoch_id), wrapped.blob, _epoch_aad(owner_id, version, epoch_id)
        )
        return {"kek_id": wrapped.kek_id, "wrapped": blob, "epoch_id": epoch_id}

    def create(self, owner_id: str) -> None:
        """Make the first data key version for a new owner."""
        self._insert_version(owner_id, 1)

    def create_many(self, owner_ids: list[str]) -> None:
        """Make the first data key version for many new owners in one transaction (imports,
        and the benchmarks' populations)."""
        with self._writing() as conn:
            epoch_id = self._current_epoch_id(conn)
            conn.execute(insert(data_key_table), [
                {"owner_id": owner_id, "version": 1, "encryptions": 0,
                 "created_at": datetime.now(UTC),
                 **self._sealed(owner_id, 1, self._provider.wrap(
                     secrets.token_bytes(32), _aad(owner_id, 1)), epoch_id)}
                for owner_id in owner_ids])

    def _insert_version(self, owner_id: str, version: int) -> None:
        wrapped = self._provider.wrap(secrets.token_bytes(32), _aad(owner_id, version))
        with self._writing() as conn:
            epoch_id = self._current_epoch_id(conn)
            conn.execute(
                insert(data_key_table).values(
                    owner_id=owner_id,
                    version=version,
                    encryptions=0,
                    created_at=datetime.now(UTC),
                    **self._sealed(owner_id, version, wrapped, epoch_id),
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
        with self._writing() as conn:
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
        """A specific key version, as named in a ciphertext's header.

        The key store is asked every time: a version erased (or re-wrapped, or re-sealed) by
        any process on any host is gone for the very next call. Only the unwrapping is saved,
        for a row whose stored bytes are exactly the ones unwrapped before (`OpenedKeys`).
        """
        row = self._row(owner_id, version)
        return self._opened.get(row) or self._opened.put(row, self._unwrap(row))

    def for_decryption_many(self, wanted: Iterable[tuple[str, int]]
                            ) -> dict[tuple[str, int], DataKey]:
        """Many owners' key versions in one query, each unwrapped once (bulk decisions).

        Keys missing from the store (an erased customer) are simply absent from the answer, so
        the caller fails closed for those owners alone. Nothing is kept after the call: the
        next call reads the store again, so an erasure counts at once.
        """
        pairs = set(wanted)
        if not pairs:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(select(data_key_table).where(
                data_key_table.c.owner_id.in_({owner for owner, _ in pairs}))).all()
        held = self._epochs.held()
        unwrap = self._provider.snapshot().unwrap  # the keyring file checked once, not per key
        keys = {}
        for row in rows:
            if (row.owner_id, row.version) not in pairs:
                continue
            try:
                blob = bytes(row.wrapped) if row.epoch_id is None else epochs.unseal(
                    held[row.epoch_id], row.wrapped,
                    _epoch_aad(row.owner_id, row.version, row.epoch_id))
            except KeyError:
                # Re-sealed under a newer epoch since `held` was read: the single path
                # re-reads the row.
                keys[(row.owner_id, row.version)] = self.for_decryption(row.owner_id,
                                                                        row.version)
                continue
            key = unwrap(WrappedKey(row.kek_id, blob), _aad(row.owner_id, row.version))
            keys[(row.owner_id, row.version)] = DataKey(row.owner_id, row.version, key)
        return keys

    def _row(self, owner_id: str, version: int) -> Row[Any]:
        with self._engine.connect() as conn:
            row = conn.execute(
                _VERSION_QUERY, {"owner_id": owner_id, "version": version}).one_or_none()
        if row is None:
            raise DataKeyMissingError(f"no data key version {version} for owner {owner_id}")
        return row

    def _unwrap(self, row: Row[Any]) -> DataKey:
        try:
            blob = self._unsealed(row)
        except EpochKeyMissingError:
            # A rotation re-sealed this row and destroyed its epoch between read and open.
            row = self._row(row.owner_id, row.version)
            blob = self._unsealed(row)
        key = self._provider.unwrap(
            WrappedKey(row.kek_id, blob), _aad(row.owner_id, row.version)
        )
        return DataKey(row.owner_id, row.version, key)

    def _unsealed(self, row: Row[Any]) -> bytes:
        """The KEK-wrapped key inside the row's epoch seal (bare in a not yet upgraded store)."""
        if row.epoch_id is None:
            return bytes(row.wrapped)
        return epochs.unseal(
            self._epochs.key(row.epoch_id), row.wrapped,
            _epoch_aad(row.owner_id, row.version, row.epoch_id),
        )

    def destroy(self, owner_id: str, *, now: datetime) -> int:
        """Crypto-shred: delete every version of the owner's key. Returns versions destroyed.

        On SQLite the deleted rows are zeroed and the WAL is checkpointed and truncated before
        this returns, so the key store's files hold no copy. Everywhere, the epoch key that
        sealed the rows is due for destruction `shred_delay` from `now` (see `shred`).
        """
        self._opened.forget(owner_id)
        with self._writing() as conn:
            destroyed = conn.execute(
                delete(data_key_table).where(data_key_table.c.owner_id == owner_id)
            ).rowcount
            if destroyed:
                conn.execute(
                    update(key_epoch_table)
                    .where(key_epoch_table.c.slot == 1)
                    .values(shred_due=func.coalesce(
                        key_epoch_table.c.shred_due,
                        literal(now + self._shred_delay, type_=UTCDateTime())))
                )
        self._compact()
        return destroyed

    def shred_due(self) -> datetime | None:
        """When the epoch key that sealed the latest erased keys is due for destruction."""
        with self._engine.connect() as conn:
            return conn.execute(select(key_epoch_table.c.shred_due)).scalar_one_or_none()

    def shred(self, now: datetime, *, force: bool = False) -> ShredReport:
        """Destroy the epoch key under which erased keys' residue is sealed, if due (or `force`).

        A new epoch key becomes current first, every remaining data key is re-sealed under it,
        and only then is every other epoch key destroyed: no live key is ever left under a
        destroyed epoch. Writers share-lock the epoch row, so the switch waits for any write
        still sealing under the old epoch. A run cut short by a crash is finished by the next.
        """
        with self._epochs.changing():
            with self._engine.connect() as conn:
                due = conn.execute(select(key_epoch_table.c.shred_due)).scalar_one()
            rotated = force or (due is not None and due <= now)
            if rotated:
                new = self._epochs.add()
                with self._writing() as conn:
                    conn.execute(
                        update(key_epoch_table)
                        .where(key_epoch_table.c.slot == 1)
                        .values(current=new, shred_due=None)
                    )
            current = self._current_epoch_id()
            resealed = self._reseal_all(current)
            destroyed = self._epochs.keep_only(current)
        if resealed:
            self._compact()
        return ShredReport(rotated=rotated, resealed=resealed, destroyed=destroyed,
                           current_epoch=current)

    def _reseal_all(self, current: str, batch_size: int = 500) -> int:
        """Seal every row not under `current` under it (hold the epoch file's lock)."""
        stale = or_(data_key_table.c.epoch_id.is_(None), data_key_table.c.epoch_id != current)
        done = 0
        while True:
            with self._writing() as conn:
                rows = conn.execute(select(data_key_table).where(stale).limit(batch_size)).all()
                for row in rows:
                    self._replace_row(conn, row, WrappedKey(row.kek_id, self._unsealed(row)),
                                      current)
            done += len(rows)
            if not rows:
                return done

    def _compact(self) -> None:
        """Make deleted and re-sealed rows leave the key store's files where the engine can.

        SQLite: checkpoint the WAL into the (secure-deleted) main file and truncate it to zero
        bytes. PostgreSQL keeps dead tuples and WAL whatever we do; there the epoch seal is
        what protects them, and this does nothing.
        """
        if self._engine.dialect.name != "sqlite":
            return
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            cursor.close()
        finally:
            raw.close()
        if busy:
            # A reader held the WAL past the busy timeout: the next erasure or shred truncates
            # it; until then the epoch seal protects what it holds.
            log.warning("key store WAL not truncated: a reader held it past the busy timeout")

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

        Each batch commits on its own and each row is updated only if its KEK and epoch are
        still the ones read, so the vault keeps serving (and creating keys) while this runs.
        """
        active = self._provider.active_kek_id()
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(data_key_table)).scalar_one()
            current = conn.execute(
                select(func.count()).where(data_key_table.c.kek_id == active)
            ).scalar_one()
        done = 0
        while True:
            with self._writing() as conn:
                epoch_id = self._current_epoch_id(conn)
                rows = conn.execute(
                    select(data_key_table)
                    .where(data_key_table.c.kek_id != active)
                    .limit(batch_size)
                ).all()
                for row in rows:
                    self._rewrap_row(conn, row, active, epoch_id)
            done += len(rows)
            if progress:
                progress(current + done, total)
            if len(rows) < batch_size:
                return RewrapReport(rewrapped=done, already_current=current, active_kek_id=active)

    def _rewrap_row(self, conn: Connection, row: Row[Any], active: str, epoch_id: str) -> None:
        aad = _aad(row.owner_id, row.version)
        key = self._provider.unwrap(WrappedKey(row.kek_id, self._unsealed(row)), aad)
        wrapped = self._provider.wrap(key, aad)
        if wrapped.kek_id != active:
            raise KeyUnavailableError("the active KEK changed during rotation; run it again")
        self._replace_row(conn, row, wrapped, epoch_id)

    def _replace_row(self, conn: Connection, row: Row[Any], wrapped: WrappedKey,
                     epoch_id: str) -> None:
        """Store `row`'s key as `wrapped`, sealed under `epoch_id`, if the row is unchanged."""
        same_epoch = (data_key_table.c.epoch_id.is_(None) if row.epoch_id is None
                      else data_key_table.c.epoch_id == row.epoch_id)
        conn.execute(
            update(data_key_table)
            .where(
                data_key_table.c.owner_id == row.owner_id,
                data_key_table.c.version == row.version,
                data_key_table.c.kek_id == row.kek_id,
                same_epoch,
            )
            .values(**self._sealed(row.owner_id, row.version, wrapped, epoch_id))
        )
