"""Accounts and their server-side sessions. No column holds plaintext personal data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class Role(StrEnum):
    """Who an account belongs to; each role sees its own part of the vault."""

    CUSTOMER = "customer"
    AUDITOR = "auditor"
    OPERATOR = "operator"


class Account(SQLModel, table=True):
    """A person who signs in. The e-mail lives sealed in the profile; here only its blind index."""

    id: str = Field(primary_key=True, max_length=32)
    role: Role = Field(sa_column=Column(String(16), nullable=False, index=True))
    email_index: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=256)
    created_at: datetime = Field(sa_column=utc_column())


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; this row holds only its hash."""

    __tablename__ = "web_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())


class SignInFailure(SQLModel, table=True):
    """A failed sign-in, keyed by a blind index of the e-mail, for throttling across workers."""

    __tablename__ = "sign_in_failure"

    id: int | None = Field(default=None, primary_key=True)
    throttle_key: str = Field(max_length=64, index=True)
    failed_at: datetime = Field(sa_column=utc_column(index=True))
