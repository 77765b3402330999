"""The company data API: only granted fields, for granted purposes, to the right company.

An access-control matrix: every way a company might reach data it was not given (another
subject, another company's token, a field or purpose outside the grant, tampered paths and
queries, a token in the URL, a revoked or expired grant) is refused, and nothing leaks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.audit.models import AuditEntry
from cmr_vault.consent.models import Grant
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import Browser, make_customer
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, get_code, redeem, register_company

__all__ = ["browser", "company", "customer"]
RECEIPTS = "Send your order receipts"


@pytest.fixture
def access(browser: Browser, client: TestClient[Litestar], company: Company,
           db_session: Session) -> dict[str, Any]:
    """A token for e-mail only, and the company's pairwise subject for the customer."""
    code, verifier = get_code(browser, company, scopes=["profile.email:read"], expiry="30d")
    tokens = redeem(client, company, code, verifier).json()
    db_session.rollback()
    subject = db_session.exec(select(Grant)).one().pairwise_subject
    return {"token": tokens["access_token"], "subject": subject}


def _read(client: TestClient[Litestar], token: str, subject: str, fields: str = "email",
          purpose: str = RECEIPTS, **headers: str) -> Any:
    return client.get(f"/api/v1/subjects/{subject}/profile",
                      params={"fields": fields, "purpose": purpose},
                      headers={"Authorization": f"Bearer {token}", **headers})


def test_a_granted_field_for_a_granted_purpose_is_returned(
    client: TestClient[Litestar], access: dict[str, Any]
) -> None:
    response = _read(client, access["token"], access["subject"])
    assert response.status_code == 200, response.text
    assert response.json()["fields"] == {"email": "ada@example.org"}


def test_every_read_is_audited_with_fields_purpose_decision_and_rules(
    client: TestClient[Litestar], access: dict[str, Any], db_session: Session
) -> None:
    _read(client, access["token"], access["subject"])
    _read(client, access["token"], access["subject"], fields="phone")
    db_session.rollback()
    reads = db_session.exec(select(AuditEntry).where(AuditEntry.action == "profile.read")
                            .order_by(AuditEntry.seq)).all()
    assert [r.outcome for r in reads] == ["allow", "deny"]
    assert all(r.purpose == RECEIPTS for r in reads)
    assert '"fields":["email"]' in reads[0].details
    assert '"policy_version"' in reads[0].details
    assert '"rule_ids"' in reads[1].details
    assert "ada@example.org" not in "".join(r.details for r in reads)


@pytest.mark.parametrize(
    ("fields", "purpose"),
    [("phone", RECEIPTS), ("email,phone", RECEIPTS), ("given_name", RECEIPTS),
     ("email", "Profiling for ads"), ("email", "send your order receipts")],
)
def test_fields_or_purposes_outside_the_grant_are_refused_naming_what_is_missing(
    client: TestClient[Litestar], access: dict[str, Any], fields: str, purpose: str
) -> None:
    response = _read(client, access["token"], access["subject"], fields, purpose)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert "ada@example.org" not in response.text
    assert "+44" not in response.text
    assert set(body["errors"]) <= set(fields.split(","))


@pytest.mark.parametrize(
    "subject",
    ["not-a-subject", "../profile", "%2e%2e", "0" * 40],
)
def test_another_or_a_tampered_subject_is_not_found(
    client: TestClient[Litestar], access: dict[str, Any], subject: str
) -> None:
    response = _read(client, access["token"], subject)
    assert response.status_code in (404, 400)
    assert "ada@example.org" not in response.text


def test_one_companys_token_never_reaches_another_customer_or_company(
    client: TestClient[Litestar], access: dict[str, Any], db_session: Session,
    runtime: Runtime, other_client: TestClient[Litestar],
) -> None:
    bea = make_customer(db_session, runtime, email="bea@example.org",
                        profile={"email": "bea@example.org"})
    other = register_company(db_session, runtime)
    bea_browser = Browser(other_client)
    assert bea_browser.sign_in("bea@example.org").status_code == 303
    code, verifier = get_code(bea_browser, other, scopes=["profile.email:read"])
    redeem(bea_browser.client, other, code, verifier)
    db_session.rollback()
    bea_subject = db_session.exec(select(Grant).where(Grant.account_id == bea.id)).one()
    response = _read(client, access["token"], bea_subject.pairwise_subject)
    assert response.status_code == 404
    assert "bea@example.org" not in response.text


def test_no_token_or_a_bad_token_gets_a_bearer_challenge(
    client: TestClient[Litestar], access: dict[str, Any]
) -> None:
    missing = client.get(f"/api/v1/subjects/{access['subject']}/profile",
                         params={"fields": "email", "purpose": RECEIPTS})
    assert missing.status_code == 401
    # RFC 6750 §3: no error code when no credentials came; RFC 9728 §5.1: where to get some.
    assert missing.headers["www-authenticate"] == (
        'Bearer realm="cmr-vault", resource_metadata='
        '"http://127.0.0.1:8000/.well-known/oauth-protected-resource/api/v1"')
    bad = _read(client, "not-a-token", access["subject"])
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


def test_a_token_in_the_query_string_is_refused(
    client: TestClient[Litestar], access: dict[str, Any]
) -> None:
    response = client.get(f"/api/v1/subjects/{access['subject']}/profile",
                          params={"fields": "email", "purpose": RECEIPTS,
                                  "access_token": access["token"]})
    assert response.status_code in (400, 401)
    assert "ada@example.org" not in response.text


def test_revoking_in_the_portal_stops_the_very_next_read(
    browser: Browser, client: TestClient[Litestar], access: dict[str, Any],
    db_session: Session,
) -> None:
    assert _read(client, access["token"], access["subject"]).status_code == 200
    grant = db_session.exec(select(Grant)).one()
    browser.submit(f"/connections/{grant.id}/revoke", {}, page="/connections")
    response = _read(client, access["token"], access["subject"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_grant_past_its_expiry_stops_reads_even_with_a_live_token(
    client: TestClient[Litestar], access: dict[str, Any], clock: FrozenClock,
    db_session: Session,
) -> None:
    grant = db_session.exec(select(Grant)).one()
    grant.expires_at = clock.now() + timedelta(minutes=2)
    db_session.add(grant)
    db_session.commit()
    assert _read(client, access["token"], access["subject"]).status_code == 200
    clock.advance(minutes=3)
    assert _read(client, access["token"], access["subject"]).status_code == 401


def test_unknown_fields_and_a_missing_purpose_are_bad_requests(
    client: TestClient[Litestar], access: dict[str, Any]
) -> None:
    assert _read(client, access["token"], access["subject"], fields="password").status_code == 400
    assert _read(client, access["token"], access["subject"], purpose=" ").status_code == 400
