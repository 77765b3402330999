"""Profile fields, each sealed under the owner's data key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, LargeBinary, String
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class ProfileField(SQLModel, table=True):
    """One field of one profile, with nothing in clear but the owner's id.

    `name_index` is a keyed blind index of owner and field name (the row's handle), `sealed_name`
    the sealed name (custom field names are the customer's own words), `sealed` the value.
    """

    __tablename__ = "profile_field"

    account_id: str = Field(
        sa_column=Column(String(32), ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    )
    name_index: str = Field(primary_key=True, max_length=64)
    sealed_name: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = Field(sa_column=utc_column())
