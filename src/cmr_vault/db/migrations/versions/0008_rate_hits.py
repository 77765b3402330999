"""rate limits shared by every worker: a log of counted requests

Revision ID: 0008_rate_hits
Revises: 0007_intents
Create Date: 2026-11-23 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_rate_hits"
down_revision = "0007_intents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_hit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("caller_key", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False, index=True),
    )
    op.create_index("ix_rate_hit_caller_at", "rate_hit", ["caller_key", "at"])


def downgrade() -> None:
    op.drop_table("rate_hit")
