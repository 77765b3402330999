"""Every domain's tables, imported in one place for Alembic and for tests."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel


def load_metadata() -> MetaData:
    """Import every model module (registering its tables), then return the shared metadata."""
    import cmr_vault.accounts.models
    import cmr_vault.audit.models
    import cmr_vault.consent.models
    import cmr_vault.intents.models
    import cmr_vault.marketing.models
    import cmr_vault.measurement.models
    import cmr_vault.oauth.models
    import cmr_vault.rate_limits
    import cmr_vault.vault.models  # noqa: F401

    return SQLModel.metadata
