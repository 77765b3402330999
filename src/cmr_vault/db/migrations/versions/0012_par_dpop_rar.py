"""pushed authorization requests, DPoP-bound tokens and rich authorization details

Revision ID: 0012_par_dpop_rar
Revises: 0009_sealed_field_names
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_par_dpop_rar"
down_revision = "0011_openid_connect"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_client") as batch:
        batch.add_column(
            sa.Column("require_par", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("require_dpop", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("oauth_token") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=43), nullable=True))
        batch.add_column(sa.Column("authorization_details", sa.Text(), nullable=True))
    with op.batch_alter_table("grant") as batch:
        batch.add_column(sa.Column("authorization_details", sa.Text(), nullable=True))
    with op.batch_alter_table("authorization_code") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=43), nullable=True))
    op.create_table(
        "pushed_authorization_request",
        sa.Column("reference_hash", sa.String(length=64), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(length=48),
            sa.ForeignKey("oauth_client.client_id"),
            nullable=False,
        ),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "dpop_proof_seen",
        sa.Column("proof_hash", sa.String(length=64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("dpop_proof_seen")
    op.drop_table("pushed_authorization_request")
    with op.batch_alter_table("authorization_code") as batch:
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("grant") as batch:
        batch.drop_column("authorization_details")
    with op.batch_alter_table("oauth_token") as batch:
        batch.drop_column("authorization_details")
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("oauth_client") as batch:
        batch.drop_column("require_dpop")
        batch.drop_column("require_par")
