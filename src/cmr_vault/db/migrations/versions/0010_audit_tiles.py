"""audit log tiles and witness cosignatures: the tree on disk, not in each worker's memory

Revision ID: 0010_audit_tiles
Revises: 0009_sealed_field_names
Create Date: 2026-12-01 13:40:00

Both tables are derived or additive: tiles are rebuilt from the entries' leaf hashes on first
use, so an existing log needs no conversion.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_audit_tiles"
down_revision = "0009_sealed_field_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_tile",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "n"),
    )
    op.create_table(
        "audit_cosignature",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=256), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness"),
    )
    op.create_index("ix_audit_cosignature_cosigned_at", "audit_cosignature", ["cosigned_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_cosignature_cosigned_at", table_name="audit_cosignature")
    op.drop_table("audit_cosignature")
    op.drop_table("audit_tile")
