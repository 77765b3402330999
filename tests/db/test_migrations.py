"""Migrations and models never drift apart, on either database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cmr_vault.db.engine import make_engine
from cmr_vault.db.migrate import owned_by_us
from cmr_vault.db.schema import load_metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url, immediate=False)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": False, "include_name": owned_by_us})
        differences = compare_metadata(context, load_metadata())
    engine.dispose()
    assert differences == []
