"""Demo data for `cmr-vault demo`: one customer with a filled profile, created once."""

from __future__ import annotations

from sqlmodel import Session

from cmr_vault.accounts import service as accounts_service
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service

DEMO_EMAIL = "demo@example.org"
# A published password, acceptable only because `demo` serves on loopback over plain http.
DEMO_PASSWORD = "vault-demo-2026"  # noqa: S105

DEMO_PROFILE = {
    "given_name": "Dana",
    "family_name": "Demo",
    "locality": "Hamburg",
    "country": "DE",
    "locale": "de-DE",
    "time_zone": "Europe/Berlin",
    "interests": ["cycling", "coffee", "travel"],
    "identities": [
        {"kind": "mastodon", "handle": "@dana@example.social"},
        {"kind": "loyalty", "handle": "BIKE-4711"},
    ],
    "custom.shoe_size": "39",
}


def seed_demo_data(session: Session, runtime: Runtime) -> None:
    """Create the demo customer unless it exists."""
    keyring = runtime.keyring
    if accounts_service.find_by_email(session, index_key=keyring.index_key, email=DEMO_EMAIL):
        return
    account = vault_service.sign_up_customer(
        session,
        cipher=runtime.cipher,
        data_keys=runtime.data_keys,
        clock=runtime.clock,
        index_key=keyring.index_key,
        pseudonym_key=keyring.pseudonym_key,
        email=DEMO_EMAIL,
        password=DEMO_PASSWORD,
    )
    vault_service.update_profile(
        session,
        cipher=runtime.cipher,
        clock=runtime.clock,
        index_key=keyring.index_key,
        pseudonym_key=keyring.pseudonym_key,
        account=account,
        changes=dict(DEMO_PROFILE),
    )
