"""Apply and inspect Alembic migrations programmatically (`cmr-vault db upgrade`)."""

from __future__ import annotations

import procrastinate
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, make_url

from cmr_vault.crypto.field_cipher import FieldCipher

MIGRATIONS = "cmr_vault.db:migrations"


class MigrationNeedsKeys(RuntimeError):
    """A migration must convert sealed data and was given no cipher (no keyring at hand)."""


def alembic_config(engine: Engine, cipher: FieldCipher | None = None) -> Config:
    """An Alembic config bound to `engine`; migrations ship inside the package.

    `cipher` lets a migration convert sealed data (0009 seals profile field names).
    """
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    config.attributes["cipher"] = cipher
    return config


def owned_by_us(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's filter: procrastinate's tables and types are the job engine's, not ours."""
    del type_, parent_names
    return not (name or "").startswith("procrastinate")


def upgrade(engine: Engine, revision: str = "head", *, cipher: FieldCipher | None = None) -> None:
    """Bring the schema to `revision`. Safe to run on every start: it is a no-op when current.

    On PostgreSQL the job engine's own tables (procrastinate's) are created too. Without
    `cipher`, a migration that must convert sealed data refuses a database that holds any.
    """
    command.upgrade(alembic_config(engine, cipher), revision)
    ensure_job_schema(engine)


def job_conninfo(url: str) -> str:
    """A libpq connection string for procrastinate from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_job_schema(engine: Engine) -> None:
    """Create the job engine's tables (procrastinate's, PostgreSQL only) if they are missing."""
    if engine.dialect.name != "postgresql" or inspect(engine).has_table("procrastinate_jobs"):
        return
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=job_conninfo(engine.url.render_as_string(hide_password=False))))
    with app.open():
        app.schema_manager.apply_schema()
