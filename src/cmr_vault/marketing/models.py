"""Channel preferences (per company or for all companies) and the message outbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column

ALL = "*"


class ChannelPreference(SQLModel, table=True):
    """What a customer allows on one channel from one company (or, with '*', from all).

    The e-mail opt-in counts only once confirmed (double opt-in); `confirmed_at` is kept as
    evidence. Quiet hours are wall-clock "HH:MM" strings on the customer's own time zone. The
    topics say what the person cares about, so they are sealed under the customer's data key.
    """

    __tablename__ = "channel_preference"

    account_id: str = Field(
        sa_column=Column(String(32), ForeignKey("account.id", ondelete="CASCADE"),
                         primary_key=True)
    )
    client_id: str = Field(sa_column=Column(String(48), primary_key=True))
    channel: str = Field(sa_column=Column(String(16), primary_key=True))
    opted_in: bool = False
    confirmation_hash: str | None = Field(default=None, max_length=64, index=True)
    confirmed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    topics: str = Field(default="", sa_column=Column(Text, nullable=False))  # sealed, base64
    cap_day: int | None = None
    cap_week: int | None = None
    cap_month: int | None = None
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    paused_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    reminded_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    updated_at: datetime = Field(sa_column=utc_column())


class MessageStatus(StrEnum):
    """Where a message is in its life."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    REFUSED = "refused"
    FAILED = "failed"


class Message(SQLModel, table=True):
    """A push accepted from a company: the outbox row the delivery worker works from.

    The content is sealed under the customer's data key; the company never learns where the
    message goes. `not_before` holds deferred messages back (quiet hours, pauses).
    """

    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("client_id", "idempotency_key"),)

    id: str = Field(primary_key=True, max_length=32)
    client_id: str = Field(
        sa_column=Column(String(48), ForeignKey("oauth_client.client_id"), nullable=False)
    )
    account_id: str = Field(
        sa_column=Column(String(32), ForeignKey("account.id", ondelete="CASCADE"),
                         nullable=False, index=True)
    )
    idempotency_key: str = Field(max_length=128)
    channel: str = Field(max_length=16)
    topic: str = Field(max_length=64)
    purpose: str = Field(max_length=200)
    sealed_content: str = Field(sa_column=Column(Text, nullable=False))
    status: MessageStatus = Field(sa_column=Column(String(16), nullable=False, index=True))
    not_before: datetime = Field(sa_column=utc_column(index=True))
    decision: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_error: str = Field(default="", max_length=500)
    unsubscribe_hash: str = Field(max_length=64, index=True)
    created_at: datetime = Field(sa_column=utc_column())
    delivered_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True,
                                                                             index=True))


class Campaign(SQLModel, table=True):
    """One message for many subjects, run in the background in chunks, with its progress."""

    __tablename__ = "campaign"

    id: str = Field(primary_key=True, max_length=32)
    client_id: str = Field(
        sa_column=Column(String(48), ForeignKey("oauth_client.client_id"), nullable=False,
                         index=True)
    )
    channel: str = Field(max_length=16)
    topic: str = Field(max_length=64)
    purpose: str = Field(max_length=200)
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16, index=True)
    total: int = Field(sa_column=Column(Integer, nullable=False))
    processed: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    counts: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class CampaignTarget(SQLModel, table=True):
    """One subject of a campaign and what happened to it."""

    __tablename__ = "campaign_target"

    campaign_id: str = Field(
        sa_column=Column(String(32), ForeignKey("campaign.id", ondelete="CASCADE"),
                         primary_key=True)
    )
    position: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    subject: str = Field(max_length=64)
    outcome: str = Field(default="", max_length=16)
    rule_ids: str = Field(default="", sa_column=Column(Text, nullable=False))
    not_before: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    message_id: str | None = Field(default=None, max_length=32)


class PushEndpoint(SQLModel, table=True):
    """Where the customer's own app receives webhook pushes, and the key that signs them.

    Both are sealed under the customer's data key: the URL says where the person's device or
    automation lives, and the signing key must be readable only by the vault.
    """

    __tablename__ = "push_endpoint"

    account_id: str = Field(
        sa_column=Column(String(32), ForeignKey("account.id", ondelete="CASCADE"),
                         primary_key=True)
    )
    sealed_url: str = Field(sa_column=Column(Text, nullable=False))
    sealed_secret: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(sa_column=utc_column())
