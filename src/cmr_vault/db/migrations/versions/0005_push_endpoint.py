"""push endpoints

Revision ID: 0005_push_endpoint
Revises: 0004_campaigns
Create Date: 2026-11-23 03:11:10.332977
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_push_endpoint"
down_revision = "0004_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_endpoint",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("sealed_url", sa.Text(), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("push_endpoint")
