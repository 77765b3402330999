"""A company signed in to its dashboard in a browser."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class CompanySession(SQLModel, table=True):
    """A browser signed in as a company. The cookie holds a random token; this row holds only
    its SHA-256, as for customers' sessions."""

    __tablename__ = "company_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(
        sa_column=Column(
            String(48),
            ForeignKey("oauth_client.client_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    created_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
