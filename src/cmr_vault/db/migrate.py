"""Apply and inspect Alembic migrations programmatically (`cmr-vault db upgrade`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = "cmr_vault.db:migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to `engine`; migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe to run on every start: it is a no-op when current."""
    command.upgrade(alembic_config(engine), revision)
