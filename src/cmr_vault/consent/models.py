"""Grants (customer × company × scopes × purposes × expiry × status) and their history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class GrantStatus(StrEnum):
    """A grant is usable only while active; every other status stops every token at once."""

    ACTIVE = "active"
    REVOKED = "revoked"
    RELINQUISHED = "relinquished"
    COMPROMISED = "compromised"


class Grant(SQLModel, table=True):
    """What one customer allows one company: one row per pair, changed only with a record.

    `scopes` is a JSON list; `purposes` maps each granted scope to the purposes the customer
    saw for it (from the company's notice, version `notice_version`). `pairwise_subject` is the
    company's own pseudonym for the customer.
    """

    __tablename__ = "grant"
    __table_args__ = (UniqueConstraint("account_id", "client_id"),)

    id: str = Field(primary_key=True, max_length=32)
    account_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    client_id: str = Field(
        sa_column=Column(
            String(48), ForeignKey("oauth_client.client_id"), nullable=False, index=True
        )
    )
    pairwise_subject: str = Field(max_length=64, index=True)
    scopes: str = Field(sa_column=Column(Text, nullable=False))
    purposes: str = Field(sa_column=Column(Text, nullable=False))
    notice_version: int = Field(sa_column=Column(Integer, nullable=False))
    status: GrantStatus = Field(sa_column=Column(String(16), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column())


class ConsentRecord(SQLModel, table=True):
    """One change to a grant: who made it, what it became, under which notice version."""

    __tablename__ = "consent_record"

    id: int | None = Field(default=None, primary_key=True)
    grant_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("grant.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    actor: str = Field(max_length=16)
    change: str = Field(max_length=32)
    scopes: str = Field(sa_column=Column(Text, nullable=False))
    removed: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    notice_version: int = Field(sa_column=Column(Integer, nullable=False))
    at: datetime = Field(sa_column=utc_column())
