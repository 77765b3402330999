"""Company read throughput against a bare Litestar endpoint, in the same run.

    python bench/company_reads.py [--requests 2000]

Both run in-process through Litestar's TestClient on the same machine, one request at a time:
the bare endpoint returns a constant dict; the company read resolves the bearer token, loads
the grant, asks the policy engine about each field, appends the audit entry (durable before
the response: SQLite WAL, synchronous=FULL) and opens the field. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from litestar import Litestar, get
from litestar.testing import TestClient

from cmr_vault.app import create_app
from cmr_vault.consent import service as consent_service
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.migrate import upgrade
from cmr_vault.db.session import unit_of_work
from cmr_vault.oauth import service as oauth_service
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from cmr_vault.vault import service as vault_service

PURPOSE = "Send your order receipts"


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, object]:
    """The baseline: routing, serialisation and middleware of a minimal app, nothing else."""
    return {"subject": "s", "purpose": PURPOSE, "fields": {"email": "a@example.org"}}


def _vault(data_dir: Path) -> tuple[Settings, Runtime, str, str]:
    settings = Settings(_env_file=None, data_dir=data_dir, checkpoint_interval_seconds=0)  # type: ignore[call-arg]
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
        client, _ = oauth_service.register_client(
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
        subject = grant.pairwise_subject
        stored = oauth_service.find_access_token(session, token)
        assert stored is not None
        stored.access_expires_at = stored.issued_at + timedelta(days=1)  # outlive the run
        session.add(stored)
    return settings, runtime, token, subject


def _rate(client: TestClient[Litestar], path: str, count: int, **kwargs: object) -> float:
    assert client.get(path, **kwargs).status_code == 200  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(count):
        client.get(path, **kwargs)  # type: ignore[arg-type]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings, runtime, token, subject = _vault(Path(tmp))
        with TestClient(Litestar([bare])) as plain:
            baseline = _rate(plain, "/bare", args.requests)
        with TestClient(create_app(settings, runtime=runtime),
                        base_url=settings.base_url) as vault:
            reads = _rate(vault, f"/api/v1/subjects/{subject}/profile", args.requests,
                          params={"fields": "email", "purpose": PURPOSE},
                          headers={"Authorization": f"Bearer {token}"})
    print(f"bare Litestar endpoint: {baseline:,.0f} req/s ({1e6 / baseline:.0f} µs/request)")
    print(f"company read (token, grant, policy, durable audit, decrypt): {reads:,.0f} req/s "
          f"({1e6 / reads:.0f} µs/request); {baseline / reads:.1f}× the bare endpoint's cost")


if __name__ == "__main__":
    main()
