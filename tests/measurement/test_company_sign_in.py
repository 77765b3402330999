"""A company signs in to its dashboard with its client id and secret: a session cookie, its own
menu, CSRF on the form, throttled guessing, and figures that add up between the tables."""

from __future__ import annotations

import re
from collections import Counter

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.measurement.models import CompanySession
from cmr_vault.measurement.service import OTHER_RULES, Figure, refusals_by_rule
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import ClientStatus
from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.measurement.conftest import company_browser
from tests.oauth.flows import register_company

NOTICE = {"profile.email:read": ["Send your order receipts"]}


def test_a_company_signs_in_and_sees_its_dashboard_with_its_own_menu(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
) -> None:
    shop = register_company(db_session, runtime, name="Menu Shop", notice=NOTICE)
    browser = company_browser(client, shop)

    page = client.get("/company/dashboard")
    assert page.status_code == 200
    assert "Menu Shop: your relationships" in page.text
    assert 'action="/company/signout"' in page.text
    assert 'href="/profile"' not in page.text  # not the customer's menu
    assert (
        client.get("/company/signin", follow_redirects=False).headers["location"]
        == "/company/dashboard"
    )

    signed_out = browser.submit("/company/signout", {}, page="/company/dashboard")
    assert signed_out.status_code == 303
    assert client.get("/company/dashboard", follow_redirects=False).status_code == 303


def test_a_wrong_secret_or_an_unknown_company_is_refused_alike(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
) -> None:
    shop = register_company(db_session, runtime, name="Guarded Shop", notice=NOTICE)
    browser = Browser(client)
    wrong = browser.submit(
        "/company/signin", {"client_id": shop.client_id, "client_secret": "not the secret"}
    )
    unknown = browser.submit(
        "/company/signin",
        {"client_id": "c_nobody", "client_secret": "not the secret"},
        page="/company/signin",
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match an approved company" in wrong.text
    assert "company_session" not in str(client.cookies)
    assert client.get("/company/dashboard", follow_redirects=False).status_code == 303


def test_the_sign_in_form_needs_its_csrf_token(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
) -> None:
    shop = register_company(db_session, runtime, name="Forged Shop", notice=NOTICE)
    Browser(client).csrf_token("/company/signin")
    forged = client.post(
        "/company/signin",
        data={"client_id": shop.client_id, "client_secret": shop.secret},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    db_session.rollback()
    assert db_session.exec(select(CompanySession)).all() == []


def test_guessing_secrets_is_throttled(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    shop = register_company(db_session, runtime, name="Busy Shop", notice=NOTICE)
    browser = Browser(client)
    answers = [
        browser.submit(
            "/company/signin",
            {"client_id": shop.client_id, "client_secret": f"guess {n}"},
            page="/company/signin",
        ).status_code
        for n in range(11)
    ]
    assert answers == [401] * 10 + [429]
    right = browser.submit(
        "/company/signin",
        {"client_id": shop.client_id, "client_secret": shop.secret},
        page="/company/signin",
    )
    assert right.status_code == 429
    assert "retry-after" in right.headers


def test_a_suspended_company_is_signed_out_at_once(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
) -> None:
    shop = register_company(db_session, runtime, name="Paused Shop", notice=NOTICE)
    company_browser(client, shop)
    db_session.rollback()
    oauth_service.set_client_status(
        db_session, client_id=shop.client_id, status=ClientStatus.SUSPENDED
    )
    db_session.commit()
    assert client.get("/company/dashboard", follow_redirects=False).status_code == 303


def test_the_session_token_is_stored_only_as_a_hash(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
) -> None:
    shop = register_company(db_session, runtime, name="Hashed Shop", notice=NOTICE)
    company_browser(client, shop)
    token = client.cookies.get("cmr_company")
    db_session.rollback()
    row = db_session.exec(select(CompanySession)).one()
    assert token and row.token_hash != token and token not in row.token_hash


def test_refusals_by_rule_add_up_to_the_refusals_and_hide_no_small_count_by_subtraction() -> None:
    counts = Counter({"quiet-hours": 9, "daily-cap": 6, "no-consent": 2, "topic-off": 1})
    by_rule = refusals_by_rule(counts, 5)
    assert sum(f.value or 0 for f in by_rule.values()) == sum(counts.values())
    assert all(f.value is None or f.value >= 5 for f in by_rule.values())
    # 1 + 2 alone would be a small "other rules"; the smallest named rule (6) joins them.
    assert by_rule == {"quiet-hours": Figure(9), OTHER_RULES: Figure(9)}


def test_the_dashboard_tables_add_up(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
) -> None:
    shop = register_company(db_session, runtime, name="Sum Shop", notice=NOTICE)
    company_browser(client, shop)
    page = client.get("/company/dashboard").text
    totals = re.findall(r"<tfoot><tr><th scope=\"row\">Total</th><td class=\"number\">(\d+)", page)
    assert totals  # with no activity every part is 0, shown, and the totals are 0
    assert set(totals) == {"0"}
