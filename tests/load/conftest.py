"""A live vault on the test's database, seeded with companies and connected customers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import reads_real_time
from tests.load.harness import Customer, VaultProcess, connect, free_port, opt_in, seed, vault_env


@pytest.fixture
@reads_real_time
def live(settings: Settings, runtime: Runtime, db_session: Session,
         tmp_path: Path, database_url: str) -> Iterator[tuple[VaultProcess, list[Customer]]]:
    """Three companies, six customers each connected to one of them and opted in."""
    shops, emails = seed(runtime, db_session, companies=3, customers=6)
    port = free_port()
    vault = VaultProcess(vault_env(settings, f"http://127.0.0.1:{port}"), port,
                         workers=2 if database_url.startswith("postgresql") else 1,
                         log=tmp_path / "vault.log")
    vault.start()
    try:
        customers = [connect(vault.base_url, email, shops[n % len(shops)])
                     for n, email in enumerate(emails)]
        opt_in(runtime, customers)
        yield vault, customers
    finally:
        vault.stop()
