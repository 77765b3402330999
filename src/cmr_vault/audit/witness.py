"""The key store remembers the newest signed tree head, so a restored backup cannot go unseen.

Restoring an old backup of the main database takes the audit log back in time: the vault would
then give the same sequence numbers to other events, and only an auditor who kept a newer
checkpoint would notice. The key store is kept and backed up apart from the main database
(`crypto.data_keys`), so it holds a witness: the size and root of the newest head the vault
signed. At start the log must still reach that head with the same root; if it does not, the
vault refuses to start until an operator accepts the rollback, and that acceptance is itself
an entry in the log (checklist R8).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.models import AuditCheckpoint
from cmr_vault.audit.transparency import TreeCache, log_size, sign_head
from cmr_vault.clock import Clock
from cmr_vault.db.engine import IMMEDIATE_OPTION

witness_metadata = MetaData()

witness_table = Table(
    "audit_witness",
    witness_metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)


class RolledBackError(RuntimeError):
    """The audit log no longer reaches the newest head the vault signed."""


@dataclass(frozen=True)
class Witness:
    """The newest signed head the key store has seen."""

    size: int
    root_hash: str
    signed_at: datetime


def witnessed(keystore: Engine) -> Witness | None:
    """The head the key store holds, if the vault ever signed one."""
    witness_metadata.create_all(keystore)
    with keystore.connect() as conn:
        row = conn.execute(select(witness_table).where(witness_table.c.id == 1)).first()
    return Witness(row.size, row.root_hash, row.signed_at) if row else None


def remember(keystore: Engine, checkpoint: AuditCheckpoint, *, allow_back: bool = False) -> None:
    """Hold `checkpoint`, which must already be committed to the main database (a witness
    ahead of the log would stop the next start). Never moves back unless told to."""
    witness_metadata.create_all(keystore)
    values = {"size": checkpoint.size, "root_hash": checkpoint.root_hash,
              "signed_at": checkpoint.signed_at}
    row = witness_table.c.id == 1
    forward = row if allow_back else row & (witness_table.c.size < checkpoint.size)
    try:
        with keystore.connect() as conn, conn.execution_options(
                **{IMMEDIATE_OPTION: True}).begin():
            moved = conn.execute(update(witness_table).where(forward).values(**values)).rowcount
            if not moved and conn.execute(select(witness_table.c.id).where(row)).first() is None:
                conn.execute(insert(witness_table).values(id=1, **values))
    except IntegrityError:
        pass  # another worker wrote the first witness at this moment; the next pass moves it up


def check_not_rolled_back(session: Session, keystore: Engine) -> None:
    """Refuse a log that is shorter than, or forked from, the head the key store holds.

    The root is recomputed from the stored entries with a tile cache of its own: a shared
    one could still hold tiles read before the restore."""
    held = witnessed(keystore)
    if held is None:
        return
    size = log_size(session)
    if size < held.size:
        raise RolledBackError(
            f"The audit log holds {size} entries, but this vault signed a head of {held.size} "
            f"entries at {held.signed_at:%Y-%m-%d %H:%M} UTC: the database was restored from an "
            "older backup, or its log was cut. Starting would give entries "
            f"{size + 1}-{held.size} to other events. Find out what happened; to go on from "
            "this database, run `cmr-vault audit accept-rollback`, which records it in the log.")
    signed = session.get(AuditCheckpoint, held.size)
    root = signed.root_hash if signed else \
        TreeCache().synced(session, held.size).root(held.size).hex()
    if root != held.root_hash:
        raise RolledBackError(
            f"The first {held.size} entries of the audit log are not the ones this vault signed "
            f"at {held.signed_at:%Y-%m-%d %H:%M} UTC: the log was forked (an older backup "
            "restored and written to since). Find out what happened; to go on from this "
            "database, run `cmr-vault audit accept-rollback`, which records it in the log.")


@dataclass(frozen=True)
class AcceptedRollback:
    """What the operator accepted: the head the key store held, and the log it accepted."""

    witnessed_size: int
    log_size: int


def accept_rollback(session: Session, keystore: Engine, *, tree: TreeCache, seed: bytes,
                    origin: str, clock: Clock) -> tuple[AcceptedRollback, AuditCheckpoint]:
    """Record the rollback in the log and sign a head over it. The caller commits, then calls
    `remember(..., allow_back=True)` with the returned head."""
    held = witnessed(keystore)
    accepted = AcceptedRollback(held.size if held else 0, log_size(session))
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor="operator:cli", action="audit.rollback_accepted", resource="audit-log",
        details={"witnessed_size": accepted.witnessed_size, "log_size": accepted.log_size}))
    session.flush()
    return accepted, sign_head(session, tree=tree, seed=seed, origin=origin, clock=clock)

