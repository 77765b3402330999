"""account recovery, e-mail confirmation and company sign-in: e-mailed single-use tokens,
confirmed addresses, and company sessions for the dashboard

Revision ID: 0013_account_tokens
Revises: 0009_sealed_field_names
Create Date: 2026-12-01 14:00:00

Accounts that exist before this revision stay unconfirmed: nobody ever proved they read the
address, and saying otherwise would tell companies something the vault does not know.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_account_tokens"
down_revision = "0012_par_dpop_rar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("email_confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "account_token",
        sa.Column("selector", sa.String(32), primary_key=True),
        sa.Column("verifier_hash", sa.String(64), nullable=False),
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("account.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("email_index", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "company_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(48),
                  sa.ForeignKey("oauth_client.client_id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("company_session")
    op.drop_table("account_token")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("email_confirmed_at")
