"""Attacks on the hardened flow: a stolen DPoP-bound token, a replayed DPoP proof (also across
workers), a reused pushed request, and authorization details widened on refresh."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from cmr_vault.db.engine import make_engine
from cmr_vault.oauth import dpop
from cmr_vault.oauth.authorization_details import DETAILS_TYPE
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import Browser
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, consent, get_code, pkce_pair, redirect_params, refresh
from tests.oauth.holder_of_key import DPoPHolder
from tests.oauth.test_authorization_details import approve
from tests.oauth.test_dpop import bound_tokens, profile_url, read_profile
from tests.oauth.test_pushed_authorization import by_reference, push

__all__ = ["browser", "company", "customer"]
RECEIPTS = "Send your order receipts"


def _bound(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    holder: DPoPHolder,
    db_session: Session,
) -> tuple[str, str]:
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    token = bound_tokens(client, company, holder, code, verifier)["access_token"]
    db_session.rollback()
    return token, db_session.exec(select(Grant)).one().pairwise_subject


def test_a_stolen_dpop_token_without_the_key_reads_nothing(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    clock: FrozenClock,
    db_session: Session,
) -> None:
    token, subject = _bound(browser, client, company, DPoPHolder(clock), db_session)
    thief = DPoPHolder(clock)
    attempts = [
        read_profile(client, subject, f"Bearer {token}"),
        read_profile(client, subject, f"DPoP {token}"),
        read_profile(
            client,
            subject,
            f"DPoP {token}",
            thief.proof("GET", profile_url(subject), access_token=token),
        ),
    ]
    for attempt in attempts:
        assert attempt.status_code == 401, attempt.text
        assert "ada@example.org" not in attempt.text


def test_a_replayed_dpop_proof_is_refused(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    clock: FrozenClock,
    db_session: Session,
) -> None:
    holder = DPoPHolder(clock)
    token, subject = _bound(browser, client, company, holder, db_session)
    proof = holder.proof("GET", profile_url(subject), access_token=token)
    assert read_profile(client, subject, f"DPoP {token}", proof).status_code == 200
    replay = read_profile(client, subject, f"DPoP {token}", proof)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]


def test_a_proof_seen_by_one_worker_is_refused_by_another(
    runtime: Runtime, clock: FrozenClock
) -> None:
    """Two engines stand for two worker processes: only the database remembers the jti."""
    proof = dpop.CheckedProof(jkt="k" * 43, jti="one-proof", iat=clock.now())
    workers = [
        make_engine(runtime.settings.resolved_database_url, immediate=True) for _ in range(2)
    ]
    try:
        with Session(workers[0]) as first:
            assert dpop.remember(first, proof, clock.now())
            first.commit()
        with Session(workers[1]) as second:
            assert not dpop.remember(second, proof, clock.now())
        clock.advance(seconds=(dpop.MAX_AGE + dpop.CLOCK_SKEW).total_seconds() + 1)
        later = dpop.CheckedProof(jkt="k" * 43, jti="another-proof", iat=clock.now())
        with Session(workers[1]) as second:
            assert dpop.remember(second, later, clock.now())
            second.commit()
    finally:
        for engine in workers:
            engine.dispose()


def test_a_pushed_request_cannot_be_used_twice(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    request_uri = push(client, company, pkce_pair()[1]).json()["request_uri"]
    query = by_reference(company, request_uri)
    assert "code" in redirect_params(consent(browser, query, scopes=["profile.email:read"]))
    again = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert again.status_code == 400
    assert "location" not in again.headers


def test_details_cannot_be_widened_on_refresh(
    browser: Browser, client: TestClient[Litestar], company: Company, clock: FrozenClock
) -> None:
    end = (clock.now() + timedelta(days=10)).isoformat()
    approved = [
        {"type": DETAILS_TYPE, "fields": ["email"], "purposes": [RECEIPTS], "expires_at": end}
    ]
    tokens = approve(browser, client, company, json.dumps(approved), scopes=["profile.email:read"])
    wider: list[dict[str, Any]] = [
        {
            **approved[0],
            "fields": ["email", "given_name"],
            "purposes": [RECEIPTS, "Address you by name"],
        },
        {**approved[0], "channels": ["email"], "purposes": [RECEIPTS, "Tell you about sales"]},
        {**approved[0], "expires_at": (clock.now() + timedelta(days=400)).isoformat()},
        {key: value for key, value in approved[0].items() if key != "expires_at"},
    ]
    for asked in wider:
        response = refresh(
            client, company, tokens["refresh_token"], authorization_details=json.dumps([asked])
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_authorization_details"
    still = refresh(client, company, tokens["refresh_token"])
    assert still.status_code == 200, still.text
    assert still.json()["authorization_details"][0]["fields"] == ["email"]
