"""Profile fields, each sealed under the owner's data key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, LargeBinary, String
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class ProfileField(SQLModel, table=True):
    """One field of one profile. `name` is the field's name, `sealed` its ciphertext."""

    __tablename__ = "profile_field"

    account_id: str = Field(
        sa_column=Column(String(32), ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    )
    name: str = Field(primary_key=True, max_length=80)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = Field(sa_column=utc_column())
