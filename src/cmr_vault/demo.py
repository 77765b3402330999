"""Demo data for `cmr-vault demo`, created once: a customer with a filled profile, a company
she is connected to (with a message in her inbox), and an auditor, so each of the three
journeys has something to show on first start."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Account, Role
from cmr_vault.consent import service as consent_service
from cmr_vault.marketing import service as marketing_service
from cmr_vault.oauth import service as oauth_service
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service

DEMO_EMAIL = "demo@example.org"
# A published password, acceptable only because `demo` serves on loopback over plain http.
DEMO_PASSWORD = "vault-demo-2026"  # noqa: S105

DEMO_AUDITOR = "auditor@example.org"
DEMO_COMPANY = "Velo Bike Shop"
SALES = "Tell you about sales and new bikes"

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
    """Create the demo customer, company, connection and auditor unless they exist."""
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
    _demo_company(session, runtime, account)
    accounts_service.create_account(
        session, index_key=keyring.index_key, data_keys=runtime.data_keys, clock=runtime.clock,
        role=Role.AUDITOR, email=DEMO_AUDITOR, password=DEMO_PASSWORD)


def _demo_company(session: Session, runtime: Runtime, account: Account) -> None:
    """A company with a grant from the demo customer and one message in her inbox."""
    keyring = runtime.keyring
    client, _ = oauth_service.register_client(
        session, clock=runtime.clock, registration=oauth_service.ClientRegistration(
            name=DEMO_COMPANY, description="Bikes, repairs and rides around Hamburg.",
            homepage="https://velo.example", privacy_policy_url="https://velo.example/privacy",
            redirect_uris=["https://velo.example/oauth/callback"],
            notice={"profile.given_name:read": ["Greet you by name in the shop"],
                    "profile.email:read": ["Send your repair receipts"],
                    "marketing.inbox": [SALES], "marketing.email": [SALES]}))
    grant = consent_service.give_consent(
        session, runtime.consent_context(), account_id=account.id, client=client,
        scopes=["profile.given_name:read", "marketing.inbox"],
        expires_at=runtime.clock.now() + timedelta(days=365))
    marketing_service.set_preference(
        session, runtime.consent_context(), cipher=runtime.cipher, account_id=account.id,
        change=marketing_service.PreferenceChange(
            client_id=client.client_id, channel="inbox", opted_in=True,
            topics=["bikes", "sales"], cap_day=2, cap_week=None, cap_month=None,
            quiet_start=None, quiet_end=None, paused_until=None))
    ctx = runtime.delivery_context()
    marketing_service.submit_push(
        session, clock=runtime.clock, policy=ctx.policy, cipher=runtime.cipher,
        pseudonym_key=keyring.pseudonym_key, grant=grant, client=client,
        in_force=frozenset(consent_service.scopes_of(grant)), channels=ctx.channels,
        push=marketing_service.PushRequest(
            subject=grant.pairwise_subject, channel="inbox", topic="bikes", purpose=SALES,
            title="Spring service week", body="Free brake check with every service booked.",
            idempotency_key="demo-1"))
    marketing_service.deliver_due(session, ctx)
