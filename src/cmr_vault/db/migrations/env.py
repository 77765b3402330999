"""Alembic environment: the URL comes from the caller (CLI or tests), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

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
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table to drop or change a column; with foreign keys on,
            # dropping the old copy would cascade and delete every dependent row (profiles with
            # their account). SQLite ignores this pragma inside a transaction, so it is set on
            # the driver's connection before Alembic begins one, and restored after.
            _foreign_keys(connection, on=False)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=owned_by_us,
        )
        try:
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if sqlite:
                _foreign_keys(connection, on=True)


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    connection.connection.driver_connection.execute(  # type: ignore[union-attr]
        f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


run_migrations_online()
