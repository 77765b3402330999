"""profile field names sealed: a keyed blind index and a sealed name replace the plain name

Revision ID: 0009_sealed_field_names
Revises: 0008_rate_hits
Create Date: 2026-12-01 11:00:00

Existing rows are converted here, which needs the customers' data keys: `cmr_vault.db.migrate`
hands in a `FieldCipher` (attribute "cipher") when it has the keyring, as `cmr-vault db upgrade`,
`init` and `serve` do. Without one, a database that holds profile rows is refused rather than
left half converted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.db.migrate import MigrationNeedsKeys

revision = "0009_sealed_field_names"
down_revision = "0008_rate_hits"
branch_labels = None
depends_on = None


def _cipher() -> FieldCipher:
    cipher: FieldCipher | None = context.config.attributes.get("cipher")
    if cipher is None:
        raise MigrationNeedsKeys(
            "profile_field holds rows whose names must be sealed or opened with the customers' "
            "data keys, and no keyring was found: run `cmr-vault db upgrade` where the keyring "
            "is (CMR_VAULT_KEY_FILE)")
    return cipher


def _secure_delete() -> None:
    # SQLite keeps deleted row contents in free pages unless told to overwrite them.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA secure_delete = ON")


def _rebuild(read: list[str], key: sa.Column[Any], extra: list[sa.Column[Any]],
             convert: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Read every row (the `read` columns besides the fixed ones) and convert it per account,
    then recreate the table keyed by (account_id, `key`) and write the rows back. A new table
    rather than ALTERs: the primary key changes. Nothing changes if a conversion fails."""
    _secure_delete()
    bind = op.get_bind()
    query = sa.select(*(sa.column(name) for name in ["account_id", "sealed", *read]),
                      sa.column("updated_at", sa.DateTime(timezone=True))
                      ).select_from(sa.table("profile_field"))
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in bind.execute(query).mappings():
        by_account[row["account_id"]].append(dict(row))
    converted = [new for account_id, rows in by_account.items()
                 for new in convert(account_id, rows)]
    op.drop_table("profile_field")
    table = op.create_table(
        "profile_field",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        key,
        *extra,
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", key.name),
    )
    if converted:
        op.bulk_insert(table, converted)


def _seal_names(account_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sealed = _cipher().seal_names(account_id, [row["name"] for row in rows])
    return [{"account_id": account_id, "name_index": sealed[row["name"]][0],
             "sealed_name": sealed[row["name"]][1], "sealed": row["sealed"],
             "updated_at": row["updated_at"]} for row in rows]


def _open_names(account_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = _cipher().open_names(account_id, {row["name_index"]: row["sealed_name"]
                                              for row in rows})
    return [{"account_id": account_id, "name": names[row["name_index"]],
             "sealed": row["sealed"], "updated_at": row["updated_at"]} for row in rows]


def upgrade() -> None:
    _rebuild(["name"], sa.Column("name_index", sa.String(length=64), nullable=False),
             [sa.Column("sealed_name", sa.LargeBinary(), nullable=False)], _seal_names)


def downgrade() -> None:
    _rebuild(["name_index", "sealed_name"],
             sa.Column("name", sa.String(length=80), nullable=False), [], _open_names)
