"""A newer notice never widens a grant by itself: the customer is asked on the next visit."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from tests.factories import Browser
from tests.oauth.flows import Company, get_code, redeem

NEW_PURPOSE = "Recommend products you may like"


@pytest.fixture
def reader(browser: Browser, client: TestClient[Litestar], company: Company,
           db_session: Session) -> dict[str, Any]:
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    tokens = redeem(client, company, code, verifier).json()
    db_session.rollback()
    grant = db_session.exec(select(Grant)).one()
    return {"token": tokens["access_token"], "subject": grant.pairwise_subject,
            "grant_id": grant.id}


def _publish(client: TestClient[Litestar], company: Company) -> Any:
    return client.put("/api/v1/notice", headers=company.auth(), json={"notice": {
        "profile.email:read": ["Send your order receipts", NEW_PURPOSE]}})


def _read(client: TestClient[Litestar], reader: dict[str, Any], purpose: str) -> Any:
    return client.get(f"/api/v1/subjects/{reader['subject']}/profile",
                      params={"fields": "email", "purpose": purpose},
                      headers={"Authorization": f"Bearer {reader['token']}"})


def test_a_wider_notice_does_not_widen_existing_grants(
    client: TestClient[Litestar], company: Company, reader: dict[str, Any]
) -> None:
    published = _publish(client, company)
    assert published.json()["notice_version"] == 2
    assert _read(client, reader, "Send your order receipts").status_code == 200
    refused = _read(client, reader, NEW_PURPOSE)
    assert refused.status_code == 403
    assert "did not consent" in refused.json()["errors"]["email"]


def test_the_customer_is_asked_at_the_next_sign_in_and_agreeing_widens_the_grant(
    browser: Browser, client: TestClient[Litestar], company: Company, reader: dict[str, Any]
) -> None:
    _publish(client, company)
    browser.client.post("/signout", data={"_csrf_token": browser.csrf_token("/profile")})
    landing = browser.sign_in("ada@example.org")
    assert landing.headers["location"] == "/connections/notices"
    page = browser.client.get("/connections/notices").text
    assert NEW_PURPOSE in page

    browser.submit(f"/connections/{reader['grant_id']}/notice", {"answer": "agree"},
                   page="/connections/notices")

    assert _read(client, reader, NEW_PURPOSE).status_code == 200
    assert "Nothing to review" in browser.client.get("/connections/notices").text


def test_keeping_the_grant_as_it_was_stops_the_question(
    browser: Browser, client: TestClient[Litestar], company: Company, reader: dict[str, Any],
    db_session: Session, clock: Any,
) -> None:
    _publish(client, company)
    browser.submit(f"/connections/{reader['grant_id']}/notice", {"answer": "keep"},
                   page="/connections/notices")
    assert _read(client, reader, NEW_PURPOSE).status_code == 403
    db_session.rollback()
    assert consent_service.pending_notices(db_session, account_id=db_session.get(
        Grant, reader["grant_id"]).account_id, now=clock.now()) == []


def test_a_notice_may_not_add_scopes_the_operator_did_not_approve(
    client: TestClient[Litestar], company: Company
) -> None:
    response = client.put("/api/v1/notice", headers=company.auth(), json={"notice": {
        "profile.birth_date:read": ["Birthday wishes"]}})
    assert response.status_code == 403
    assert "not among the company's registered scopes" in response.json()["detail"]


def test_a_notice_naming_no_scope_at_all_is_refused_as_malformed(
    client: TestClient[Litestar], company: Company
) -> None:
    response = client.put("/api/v1/notice", headers=company.auth(), json={"notice": {
        "profile.birthdate:read": ["Birthday wishes"]}})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
