"""intents, offers, blocks, programmes and value offers

Revision ID: 0007_intents
Revises: 0006_consent_lifecycle
Create Date: 2026-11-23 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_intents"
down_revision = "0006_consent_lifecycle"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def _account(primary_key: bool = False) -> sa.Column:
    return sa.Column("account_id", sa.String(32), sa.ForeignKey("account.id", ondelete="CASCADE"),
                     nullable=False, primary_key=primary_key, index=not primary_key)


def _client(primary_key: bool = False) -> sa.Column:
    return sa.Column("client_id", sa.String(48), sa.ForeignKey("oauth_client.client_id"),
                     nullable=False, primary_key=primary_key, index=not primary_key)


def upgrade() -> None:
    with op.batch_alter_table("grant") as batch:
        batch.add_column(sa.Column("value_offer_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("value_fulfilled_at", UTC_TIME, nullable=True))
    op.create_table(
        "intent",
        sa.Column("id", sa.String(32), primary_key=True), _account(),
        sa.Column("topic_index", sa.String(64), nullable=False, index=True),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("audience", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("valid_until", UTC_TIME, nullable=False, index=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "intent_audience",
        sa.Column("intent_id", sa.String(32), sa.ForeignKey("intent.id", ondelete="CASCADE"),
                  primary_key=True),
        _client(primary_key=True),
    )
    op.create_table(
        "programme",
        sa.Column("id", sa.String(32), primary_key=True), _client(),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "offer",
        sa.Column("id", sa.String(32), primary_key=True), _client(), _account(),
        sa.Column("intent_id", sa.String(32), sa.ForeignKey("intent.id", ondelete="CASCADE"),
                  nullable=True, index=True),
        sa.Column("programme_id", sa.String(32),
                  sa.ForeignKey("programme.id", ondelete="CASCADE"), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("consent_request", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("not_before", UTC_TIME, nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("answered_at", UTC_TIME, nullable=True),
    )
    op.create_table(
        "company_block",
        _account(primary_key=True), _client(primary_key=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "value_offer",
        sa.Column("id", sa.String(32), primary_key=True), _client(),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("value_offer", "company_block", "offer", "programme", "intent_audience",
                  "intent"):
        op.drop_table(table)
    with op.batch_alter_table("grant") as batch:
        batch.drop_column("value_fulfilled_at")
        batch.drop_column("value_offer_id")
