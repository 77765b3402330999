"""The append-only audit log: entries chained by hash, and the chain's head."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class AuditEntry(SQLModel, table=True):
    """One event. Only pseudonyms, names of things and outcomes: never personal data."""

    __tablename__ = "audit_entry"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    recorded_at: datetime = Field(sa_column=utc_column(index=True))
    actor: str = Field(max_length=128, index=True)
    action: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=64, index=True)
    resource: str = Field(max_length=256)
    purpose: str = Field(max_length=128)
    outcome: str = Field(max_length=32, index=True)
    details: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)
    leaf_hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's head: one row, locked by every append, so appends form one sequence."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(sa_column=Column(String(64), nullable=False))


class AuditCheckpoint(SQLModel, table=True):
    """A signed tree head: the Merkle root of the first `size` entries, signed with Ed25519.

    The note is the C2SP tlog-checkpoint text, so anyone holding the public key can check it
    with standard tools; one row per size, so the vault itself can never sign two heads for
    one size (a fork) without the second insert failing.
    """

    __tablename__ = "audit_checkpoint"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: str = Field(max_length=64)
    note: str = Field(sa_column=Column(Text, nullable=False))
    signed_at: datetime = Field(sa_column=utc_column(index=True))


class AuditTile(SQLModel, table=True):
    """One full C2SP tlog-tiles tile: 256 consecutive subtree hashes at one level.

    Level 0 holds leaf hashes; level l holds the roots of 256 full tiles of level l - 1. A full
    tile never changes, so it is written once, served with a year-long cache lifetime, and any
    root or proof is computed from a few tiles instead of a tree held in memory. `root` is the
    Merkle root of the tile's 256 hashes: the tile's own hash in the level above.
    """

    __tablename__ = "audit_tile"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    n: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditCosignature(SQLModel, table=True):
    """A witness's cosignature (C2SP tlog-cosignature) on one signed tree head.

    The line is the signed-note signature line the witness returned, verified with the witness's
    key before it is stored; appended to the checkpoint's note it makes the cosigned checkpoint
    that `/audit/checkpoint` serves and every receipt's proof carries.
    """

    __tablename__ = "audit_cosignature"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    witness: str = Field(sa_column=Column(String(256), primary_key=True))
    line: str = Field(sa_column=Column(Text, nullable=False))
    cosigned_at: datetime = Field(sa_column=utc_column(index=True))
