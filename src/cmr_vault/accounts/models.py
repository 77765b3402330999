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
    # When the owner followed the confirmation link sent to the current e-mail; None: unconfirmed.
    email_confirmed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


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


class TokenPurpose(StrEnum):
    """What an e-mailed link lets its holder do, once."""

    RESET_PASSWORD = "reset-password"  # noqa: S105 (a purpose, not a secret)
    CONFIRM_EMAIL = "confirm-email"


class AccountToken(SQLModel, table=True):
    """A single-use link sent by e-mail: password reset or e-mail confirmation.

    The link carries `<selector>.<verifier>`. The selector finds the row; the verifier is kept
    only as its SHA-256 and compared in constant time, so neither a copy of this table nor the
    timing of the lookup yields a usable link. `email_index` is the blind index of the address
    the link went to: a confirmation confirms that address only, not one changed to since.
    """

    __tablename__ = "account_token"

    selector: str = Field(primary_key=True, max_length=32)
    verifier_hash: str = Field(max_length=64)
    account_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    purpose: TokenPurpose = Field(sa_column=Column(String(16), nullable=False))
    email_index: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column(index=True))
