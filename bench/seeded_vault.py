"""One customer connected to one company, with a long-lived access token: the benchmarks' vault.

Shared by `company_reads.py` (in process) and `http_throughput.py` (over HTTP).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cmr_vault.consent import service as consent_service
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.migrate import upgrade
from cmr_vault.db.session import unit_of_work
from cmr_vault.oauth import service as oauth_service
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from cmr_vault.vault import service as vault_service

PURPOSE = "Send your order receipts"


@dataclass(frozen=True)
class SeededVault:
    """What a benchmark needs to call the vault as the company."""

    settings: Settings
    runtime: Runtime
    token: str
    subject: str
    client_id: str
    client_secret: str


def seeded_vault(data_dir: Path, database_url: str = "") -> SeededVault:
    """A migrated vault in `data_dir` (or on `database_url`) with one connected customer."""
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=database_url,  # type: ignore[call-arg]
                        checkpoint_interval_seconds=0)
    write_keyring(settings.resolved_key_file, Keyring.generate())
    runtime = Runtime.build(settings)
    upgrade(runtime.engine)
    runtime.data_keys.create_schema()
    keyring = runtime.keyring
    token = secrets.token_urlsafe(32)
    with unit_of_work(runtime.engine) as session:
        account = vault_service.sign_up_customer(
            session, cipher=runtime.cipher, data_keys=runtime.data_keys, clock=runtime.clock,
            index_key=keyring.index_key, pseudonym_key=keyring.pseudonym_key,
            email="bench@example.org", password="a bench password")  # noqa: S106
        client, secret = oauth_service.register_client(
            session, clock=runtime.clock, registration=oauth_service.ClientRegistration(
                name="Bench", description="", homepage="https://bench.example",
                privacy_policy_url="https://bench.example/p",
                redirect_uris=["https://bench.example/cb"],
                notice={"profile.email:read": [PURPOSE]}))
        grant = consent_service.give_consent(
            session, runtime.consent_context(), account_id=account.id, client=client,
            scopes=["profile.email:read"], expires_at=None)
        oauth_service.save_token(
            session, clock=runtime.clock, access_token=token, refresh_token=None,
            client_id=client.client_id, grant_id=grant.id, family="bench",
            scope="profile.email:read", refresh_scope="profile.email:read")
        stored = oauth_service.find_access_token(session, token)
        assert stored is not None
        stored.access_expires_at = stored.issued_at + timedelta(days=1)  # outlive the run
        session.add(stored)
        return SeededVault(settings, runtime, token, grant.pairwise_subject, client.client_id,
                             secret or "")
