"""Grants as the customer manages them and as the company sees them."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import ConsentRecord, Grant
from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.oauth.flows import Company, get_code, introspect, redeem, register_company


def _connect(browser: Browser, client: TestClient[Litestar], company: Company,
             scopes: list[str] | None = None) -> dict[str, Any]:
    code, verifier = get_code(browser, company, scopes=scopes)
    return dict(redeem(client, company, code, verifier).json())


def _grant(session: Session) -> Grant:
    session.rollback()
    return session.exec(select(Grant)).one()


def test_the_connections_page_lists_what_why_since_and_until(
    browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    _connect(browser, client, company, scopes=["profile.email:read"])
    page = browser.client.get("/connections")
    assert company.row.name in page.text
    assert "Read your e-mail" in page.text
    assert "Send your order receipts" in page.text
    assert "Connected since</dt><dd>23 November 2026" in page.text
    assert "23 November 2027" in page.text


def test_revoking_the_whole_grant_stops_its_tokens_and_shows_it_revoked(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    tokens = _connect(browser, client, company)
    grant = _grant(db_session)
    response = browser.submit(f"/connections/{grant.id}/revoke", {}, page="/connections")
    assert response.status_code == 303
    assert introspect(client, company, tokens["access_token"]) == {"active": False}
    page = browser.client.get("/connections")
    assert "You revoked its access." in page.text
    assert "Revoke all access" not in page.text


def test_withdrawing_one_scope_keeps_the_others_and_records_the_change(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)
    browser.submit(f"/connections/{grant.id}/revoke", {"scope": "marketing.email"},
                   page="/connections")
    grant = _grant(db_session)
    assert "marketing.email" not in grant.scopes
    assert "profile.email:read" in grant.scopes
    records = db_session.exec(select(ConsentRecord).where(ConsentRecord.grant_id == grant.id)
                              ).all()
    assert [r.change for r in records] == ["given", "narrowed"]
    assert records[-1].removed == '["marketing.email"]'
    assert records[-1].notice_version == 1


def test_a_customer_cannot_revoke_someone_elses_grant(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    other_client: TestClient[Litestar],
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)
    stranger = Browser(other_client)
    stranger.sign_up()
    response = stranger.submit(f"/connections/{grant.id}/revoke", {}, page="/connections")
    assert response.status_code == 404
    assert _grant(db_session).status == "active"


def test_a_company_lists_its_grants_by_pairwise_subject_only(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    _connect(browser, client, company)
    body = client.get("/api/v1/grants", headers=company.auth()).json()
    grant = _grant(db_session)
    assert [g["subject"] for g in body["grants"]] == [grant.pairwise_subject]
    assert grant.account_id not in str(body)


def test_two_companies_see_unlinkable_subjects(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    runtime: Runtime,
) -> None:
    other = register_company(db_session, runtime)
    _connect(browser, client, company)
    _connect(browser, client, other)
    mine = client.get("/api/v1/grants", headers=company.auth()).json()["grants"]
    theirs = client.get("/api/v1/grants", headers=other.auth()).json()["grants"]
    assert len(mine) == len(theirs) == 1
    assert mine[0]["subject"] != theirs[0]["subject"]


def test_a_company_relinquishes_a_grant_and_its_tokens_stop(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    tokens = _connect(browser, client, company)
    grant = _grant(db_session)
    response = client.delete(f"/api/v1/grants/{grant.id}", headers=company.auth())
    assert response.status_code == 200
    assert response.json()["status"] == "relinquished"
    assert introspect(client, company, tokens["access_token"]) == {"active": False}
    assert "It gave up its access." in browser.client.get("/connections").text


def test_the_grants_api_needs_the_company_secret(
    client: TestClient[Litestar], company: Company
) -> None:
    response = client.get("/api/v1/grants")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Basic")
