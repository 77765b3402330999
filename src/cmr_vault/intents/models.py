"""Intents, their audiences, offers and invitations, blocks, value offers and programmes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Text
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


def _account_column() -> Column[str]:
    return Column(String(32), ForeignKey("account.id", ondelete="CASCADE"), nullable=False,
                  index=True)


def _client_column(primary_key: bool = False) -> Column[str]:
    return Column(String(48), ForeignKey("oauth_client.client_id"), nullable=False,
                  primary_key=primary_key, index=not primary_key)


class Intent(SQLModel, table=True):
    """What a customer is looking for, published to the companies they choose.

    The topic, text and budget say what a person wants, so they are sealed under the
    customer's data key; `topic_index` (a keyed blind index) lets the vault find the intents
    of one topic without reading them. `audience` is "all" (every company the customer gave
    `intents.<topic>`) or "chosen" (the companies in IntentAudience).
    """

    __tablename__ = "intent"

    id: str = Field(primary_key=True, max_length=32)
    account_id: str = Field(sa_column=_account_column())
    topic_index: str = Field(max_length=64, index=True)
    sealed: str = Field(sa_column=Column(Text, nullable=False))
    audience: str = Field(max_length=8)
    status: str = Field(max_length=16, index=True)
    valid_until: datetime = Field(sa_column=utc_column(index=True))
    created_at: datetime = Field(sa_column=utc_column())


class IntentAudience(SQLModel, table=True):
    """One company the customer chose to show an intent to."""

    __tablename__ = "intent_audience"

    intent_id: str = Field(sa_column=Column(String(32), ForeignKey("intent.id", ondelete="CASCADE"),
                                            primary_key=True))
    client_id: str = Field(sa_column=_client_column(primary_key=True))


class Offer(SQLModel, table=True):
    """A company's answer to an intent, or its invitation to a programme, for one customer.

    Decided by the policy engine like a push; the content is sealed like a message. On accept
    the customer's browser goes to `consent_request` (an authorization request the company
    prepared, PKCE and all) or, for an invitation, the grant gains the programme's scope.
    """

    __tablename__ = "offer"

    id: str = Field(primary_key=True, max_length=32)
    client_id: str = Field(sa_column=_client_column())
    account_id: str = Field(sa_column=_account_column())
    intent_id: str | None = Field(default=None, sa_column=Column(
        String(32), ForeignKey("intent.id", ondelete="CASCADE"), nullable=True, index=True))
    programme_id: str | None = Field(default=None, sa_column=Column(
        String(32), ForeignKey("programme.id", ondelete="CASCADE"), nullable=True))
    sealed: str = Field(sa_column=Column(Text, nullable=False))
    consent_request: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16, index=True)
    not_before: datetime = Field(sa_column=utc_column())
    decision: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())
    answered_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class CompanyBlock(SQLModel, table=True):
    """A company the customer never wants to hear from again: no intents, offers, invitations."""

    __tablename__ = "company_block"

    account_id: str = Field(sa_column=Column(String(32), ForeignKey("account.id",
                                                                    ondelete="CASCADE"),
                                             primary_key=True))
    client_id: str = Field(sa_column=_client_column(primary_key=True))
    created_at: datetime = Field(sa_column=utc_column())


class Programme(SQLModel, table=True):
    """An engagement programme a company runs: product tests, feedback rounds, a community."""

    __tablename__ = "programme"

    id: str = Field(primary_key=True, max_length=32)
    client_id: str = Field(sa_column=_client_column())
    kind: str = Field(max_length=32)
    name: str = Field(max_length=120)
    description: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())


class ValueOffer(SQLModel, table=True):
    """What a customer gets for a grant: points, a discount, early access. The consent screen
    shows it, the grant and its receipt record it, the company marks it fulfilled."""

    __tablename__ = "value_offer"

    id: str = Field(primary_key=True, max_length=32)
    client_id: str = Field(sa_column=_client_column())
    kind: str = Field(max_length=32)
    description: str = Field(max_length=300)
    created_at: datetime = Field(sa_column=utc_column())
