"""OpenID Connect: a code's nonce and the customer's sign-in time; a company's sector and
id_token algorithm

Revision ID: 0011_openid_connect
Revises: 0009_sealed_field_names
Create Date: 2026-12-01 14:00:00

A company registered before keeps no sector (its pairwise subjects stay what they were) and the
vault's default id_token algorithm.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cmr_vault.db.types import UTCDateTime

revision = "0011_openid_connect"
down_revision = "0010_audit_tiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_code") as table:
        table.add_column(sa.Column("nonce", sa.String(length=255), nullable=True))
        table.add_column(sa.Column("auth_time", UTCDateTime(), nullable=True))
    with op.batch_alter_table("oauth_client") as table:
        table.add_column(sa.Column("sector_identifier", sa.String(length=255), nullable=True))
        table.add_column(sa.Column("id_token_alg", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_client") as table:
        table.drop_column("id_token_alg")
        table.drop_column("sector_identifier")
    with op.batch_alter_table("authorization_code") as table:
        table.drop_column("auth_time")
        table.drop_column("nonce")
