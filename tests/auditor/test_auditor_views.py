"""Auditors search the log, verify it, and read company reports, without seeing people."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from tests.factories import Browser
from tests.oauth.flows import Company, get_code, redeem


def _customer_connects_and_revokes(browser: Browser, client: TestClient[Litestar],
                                   company: Company, session: Session) -> None:
    code, verifier = get_code(browser, company)
    assert redeem(client, company, code, verifier).status_code == 200
    session.rollback()
    grant = session.exec(select(Grant)).one()
    browser.submit(f"/connections/{grant.id}/revoke", {}, page="/connections")


def test_an_auditor_lands_on_the_log_and_sees_no_personal_data(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    _customer_connects_and_revokes(browser, client, company, db_session)
    page = auditor_browser.client.get("/auditor")
    assert page.status_code == 200
    assert "grant.given" in page.text
    assert "grant.revoked" in page.text
    assert "ada@example.org" not in page.text
    assert "Ada" not in page.text


def test_the_log_filters_by_company_and_action(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    _customer_connects_and_revokes(browser, client, company, db_session)
    api = auditor_browser.client.get("/api/v1/auditor/entries",
                                     params={"company": company.client_id,
                                             "action": "grant.revoked"}).json()
    assert [e["action"] for e in api["entries"]] == ["grant.revoked"]
    none = auditor_browser.client.get("/api/v1/auditor/entries",
                                      params={"company": "c_nobody"}).json()
    assert none["entries"] == []


def test_customers_cannot_open_the_auditor_pages(browser: Browser) -> None:
    assert browser.client.get("/auditor").status_code == 403
    assert browser.client.get("/api/v1/auditor/entries").status_code == 403


def test_the_auditor_api_needs_a_signed_in_auditor(client: TestClient[Litestar]) -> None:
    response = client.get("/api/v1/auditor/entries", headers={"Accept": "application/json"})
    assert response.status_code == 401


def test_verifying_from_the_page_records_an_intact_log_then_names_a_tampered_entry(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    _customer_connects_and_revokes(browser, client, company, db_session)
    response = auditor_browser.submit("/auditor/integrity", {})
    assert response.status_code == 303
    page = auditor_browser.client.get("/auditor/integrity")
    assert "intact" in page.text
    db_session.rollback()
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.exec(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
    db_session.exec(text("UPDATE audit_entry SET outcome = 'x' WHERE seq = 3"))
    db_session.commit()
    auditor_browser.submit("/auditor/integrity", {})
    page = auditor_browser.client.get("/auditor/integrity")
    assert "BROKEN" in page.text
    assert "First broken entry: 3" in page.text


def test_a_company_report_counts_consent_changes_and_revocations_with_a_chart(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    _customer_connects_and_revokes(browser, client, company, db_session)
    report = auditor_browser.client.get(f"/api/v1/auditor/reports/{company.client_id}").json()
    assert report["totals"]["consent changes"] == 1
    assert report["totals"]["revocations"] == 1
    page = auditor_browser.client.get("/auditor/reports", params={"company": company.client_id})
    assert "<svg" in page.text
    assert "revocations per day" in page.text


def test_a_recorded_read_is_replayed_from_its_recorded_facts(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    token = redeem(client, company, code, verifier).json()["access_token"]
    db_session.rollback()
    subject = db_session.exec(select(Grant)).one().pairwise_subject
    client.get(f"/api/v1/subjects/{subject}/profile",
               params={"fields": "email,phone", "purpose": "Send your order receipts"},
               headers={"Authorization": f"Bearer {token}"})
    entries = auditor_browser.client.get("/api/v1/auditor/entries",
                                         params={"action": "profile.read"}).json()["entries"]
    seq = entries[0]["seq"]
    replays = auditor_browser.client.get(f"/api/v1/auditor/entries/{seq}/replay").json()
    by_item = {r["item"]: r for r in replays["replays"]}
    assert by_item["email"]["replayed_outcome"] == "allow"
    assert by_item["phone"]["replayed_outcome"] == "deny"
    assert "read.scope-missing" in by_item["phone"]["replayed_rules"]
    assert all(r["same"] for r in replays["replays"])
    page = auditor_browser.client.get(f"/auditor/entries/{seq}")
    assert "Replay" in page.text
    assert "ada@example.org" not in page.text


def test_the_log_names_companies_and_links_to_their_reports(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    code, verifier = get_code(browser, company)
    assert redeem(client, company, code, verifier).status_code == 200
    page = auditor_browser.client.get("/auditor").text

    shown = page.replace(f'title="company:{company.client_id}"', "")  # the tooltip may
    assert f"company:{company.client_id}" not in shown
    assert f'<a href="/auditor/reports?company={company.client_id}"' in page
    assert company.row.name in page


def test_the_report_is_one_click_from_the_list_and_its_charts_have_axes(
    auditor_browser: Browser, browser: Browser, client: TestClient[Litestar],
    company: Company, db_session: Session,
) -> None:
    _customer_connects_and_revokes(browser, client, company, db_session)
    reports = auditor_browser.client.get("/auditor/reports").text
    link = f"/auditor/reports?company={company.client_id}"
    assert f'href="{link}"' in reports

    report = auditor_browser.client.get(link).text
    assert f"Report: {company.row.name}" in report
    assert '<svg class="chart" role="img"' in report
    assert "<title id=" in report and "<desc id=" in report
    assert 'class="axis"' in report and 'class="tick"' in report
    assert "revocations per day" in report
    assert "the numbers</summary>" in report  # the chart's data as a table
