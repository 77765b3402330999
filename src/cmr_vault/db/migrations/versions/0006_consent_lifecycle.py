"""consent lifecycle: receipts, reminders, expiry of opt-ins, company webhooks and events

Revision ID: 0006_consent_lifecycle
Revises: 0005_push_endpoint
Create Date: 2026-11-23 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_consent_lifecycle"
down_revision = "0005_push_endpoint"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grant") as batch:
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("notice_declined", sa.Integer(), nullable=True))
    with op.batch_alter_table("channel_preference") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "consent_receipt",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("account_id", sa.String(length=32),
                  sa.ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.String(length=32),
                  sa.ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("lapses_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "company_webhook",
        sa.Column("client_id", sa.String(length=48), sa.ForeignKey("oauth_client.client_id"),
                  primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "company_event",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(length=40), nullable=False, unique=True),
        sa.Column("client_id", sa.String(length=48), sa.ForeignKey("oauth_client.client_id"),
                  nullable=False, index=True),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True, index=True),
    )


def downgrade() -> None:
    op.drop_table("company_event")
    op.drop_table("company_webhook")
    op.drop_table("reminder")
    op.drop_table("consent_receipt")
    with op.batch_alter_table("channel_preference") as batch:
        batch.drop_column("reminded_at")
        batch.drop_column("expires_at")
    with op.batch_alter_table("grant") as batch:
        batch.drop_column("notice_declined")
        batch.drop_column("reminded_at")

