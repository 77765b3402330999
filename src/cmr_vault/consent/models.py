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
    EXPIRED = "expired"


class Grant(SQLModel, table=True):
    """What one customer allows one company: one row per pair, changed only with a record.

    `scopes` is a JSON list; `purposes` maps each granted scope to the purposes the customer
    saw for it (from the company's notice, version `notice_version`). `pairwise_subject` is the
    company's own pseudonym for the customer. A newer notice never widens a grant by itself:
    `notice_declined` remembers the version the customer chose not to take up.
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
    # What the company asked for with RFC 9396 authorization details, as the customer
    # approved it (JSON), or None when it asked with scopes alone.
    authorization_details: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    notice_version: int = Field(sa_column=Column(Integer, nullable=False))
    status: GrantStatus = Field(sa_column=Column(String(16), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    reminded_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    notice_declined: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    value_offer_id: str | None = Field(default=None, max_length=32)
    value_fulfilled_at: datetime | None = Field(default=None,
                                                sa_column=utc_column(nullable=True))
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


class ConsentReceipt(SQLModel, table=True):
    """A signed receipt the customer got for one consent change (a grant or an opt-in).

    `jws` is the compact JWS the vault signed; `audit_seq` names the audit entry that records
    the same change, so the receipt can later carry a proof that the log holds it.
    """

    __tablename__ = "consent_receipt"

    id: str = Field(primary_key=True, max_length=36)
    account_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    client_id: str = Field(max_length=48)
    event: str = Field(max_length=32)
    audit_seq: int = Field(sa_column=Column(Integer, nullable=False))
    jws: str = Field(sa_column=Column(Text, nullable=False))
    issued_at: datetime = Field(sa_column=utc_column())


class Reminder(SQLModel, table=True):
    """A note from the vault in the customer's inbox: a permission lapses soon (or did)."""

    __tablename__ = "reminder"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    client_id: str = Field(max_length=48)
    kind: str = Field(max_length=32)
    target: str = Field(max_length=64)
    lapses_at: datetime = Field(sa_column=utc_column())
    created_at: datetime = Field(sa_column=utc_column())


class CompanyWebhook(SQLModel, table=True):
    """Where a company receives consent events, and the sealed Standard Webhooks secret."""

    __tablename__ = "company_webhook"

    client_id: str = Field(
        sa_column=Column(String(48), ForeignKey("oauth_client.client_id"), primary_key=True)
    )
    url: str = Field(sa_column=Column(Text, nullable=False))
    sealed_secret: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(sa_column=utc_column())


class CompanyEvent(SQLModel, table=True):
    """One change a company must follow, in the outbox until delivered and acknowledged.

    The payload names the customer only by the company's own pairwise pseudonym; `seq` keeps
    the order the changes happened in, even within one transaction.
    """

    __tablename__ = "company_event"

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(max_length=40, unique=True)
    client_id: str = Field(
        sa_column=Column(
            String(48), ForeignKey("oauth_client.client_id"), nullable=False, index=True
        )
    )
    type: str = Field(max_length=48)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())
    next_attempt_at: datetime | None = Field(default=None,
                                             sa_column=utc_column(nullable=True, index=True))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_error: str = Field(default="", max_length=500)
    delivered_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    acknowledged_at: datetime | None = Field(default=None,
                                             sa_column=utc_column(nullable=True, index=True))
