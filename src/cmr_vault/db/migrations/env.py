"""Alembic environment: the URL comes from the caller (CLI or tests), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from cmr_vault.db.engine import make_engine
from cmr_vault.db.migrate import owned_by_us
from cmr_vault.db.schema import load_metadata

config = context.config
target_metadata = load_metadata()


def run_migrations_online() -> None:
    """Run against the engine handed in by `cmr_vault.db.migrate`, or one built from the URL."""
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "", immediate=False)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=owned_by_us,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
