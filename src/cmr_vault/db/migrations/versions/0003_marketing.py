"""marketing preferences and message outbox

Revision ID: 0003_marketing
Revises: 0002_companies
Create Date: 2026-11-23 02:39:06.185741
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003_marketing"
down_revision = "0002_companies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_preference",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("confirmation_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("cap_day", sa.Integer(), nullable=True),
        sa.Column("cap_week", sa.Integer(), nullable=True),
        sa.Column("cap_month", sa.Integer(), nullable=True),
        sa.Column("quiet_start", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
        sa.Column("quiet_end", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "client_id", "channel"),
    )
    with op.batch_alter_table("channel_preference", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_preference_confirmation_hash"),
            ["confirmation_hash"],
            unique=False,
        )

    op.create_table(
        "message",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("sealed_content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("unsubscribe_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_client.client_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "idempotency_key"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_delivered_at"), ["delivered_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_not_before"), ["not_before"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_message_unsubscribe_hash"), ["unsubscribe_hash"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_unsubscribe_hash"))
        batch_op.drop_index(batch_op.f("ix_message_status"))
        batch_op.drop_index(batch_op.f("ix_message_not_before"))
        batch_op.drop_index(batch_op.f("ix_message_delivered_at"))
        batch_op.drop_index(batch_op.f("ix_message_account_id"))

    op.drop_table("message")
    with op.batch_alter_table("channel_preference", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_preference_confirmation_hash"))

    op.drop_table("channel_preference")
