"""Connections: a confirmation before anything is withdrawn, ended connections kept apart, and
each company's links and last access."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from tests.factories import Browser
from tests.oauth.flows import Company, get_code, redeem


def _grant(session: Session) -> Grant:
    session.rollback()
    return session.exec(select(Grant)).one()


def _connect(browser: Browser, client: TestClient[Litestar], company: Company) -> None:
    code, verifier = get_code(browser, company,
                              scopes=["profile.email:read", "marketing.email"])
    redeem(client, company, code, verifier)


def test_the_page_sends_withdrawals_to_a_confirmation_step_first(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)

    page = browser.client.get("/connections").text

    assert f'href="/connections/{grant.id}/confirm?scope=marketing.email"' in page
    assert f'href="/connections/{grant.id}/confirm"' in page
    assert f'action="/connections/{grant.id}/revoke"' not in page


def test_withdrawing_one_permission_is_confirmed_before_anything_changes(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)
    confirm = f"/connections/{grant.id}/confirm?scope=marketing.email"

    page = browser.client.get(confirm).text

    assert f"{company.row.name} will no longer be allowed to send you messages by e-mail." \
        in page
    assert "Nothing has changed yet." in page
    assert "marketing.email" in _grant(db_session).scopes
    assert browser.submit(f"/connections/{grant.id}/revoke", {"scope": "marketing.email"},
                          page=confirm).status_code == 303
    assert "marketing.email" not in _grant(db_session).scopes


def test_revoking_all_access_lists_everything_that_stops(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)

    page = browser.client.get(f"/connections/{grant.id}/confirm").text

    assert f"Revoke all access for {company.row.name}?" in page
    assert "<li>read your e-mail</li>" in page
    assert "<li>send you messages by e-mail</li>" in page
    assert _grant(db_session).status == "active"


def test_a_revoked_connection_moves_to_a_history_that_can_be_hidden(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)
    browser.submit(f"/connections/{grant.id}/revoke", {},
                   page=f"/connections/{grant.id}/confirm")

    page = browser.client.get("/connections").text

    history = page.index('<details class="ended"')
    assert page.index(f'id="grant-{grant.id}"') > history
    assert "One ended connection" in page
    assert "No company has access to your vault." in page


def test_each_connection_shows_the_companys_links_and_when_it_last_used_the_vault(
    browser: Browser, client: TestClient[Litestar], company: Company,
) -> None:
    _connect(browser, client, company)

    page = browser.client.get("/connections").text

    assert 'href="https://shop.example"' in page
    assert 'href="https://shop.example/privacy"' in page
    last_used = re.search(r"Last used your vault</dt><dd>(.*?)</dd>", page)
    assert last_used and "not yet" not in last_used.group(1)
    assert "23 Nov 2026" in last_used.group(1)


def test_a_customer_cannot_open_the_confirmation_for_someone_elses_connection(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    other_client: TestClient[Litestar],
) -> None:
    _connect(browser, client, company)
    grant = _grant(db_session)
    stranger = Browser(other_client)
    stranger.sign_up()

    assert stranger.client.get(f"/connections/{grant.id}/confirm").status_code == 404
