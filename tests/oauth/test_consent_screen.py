"""The consent screen as the customer meets it: freely given, honest about its end, and kept
through signing in, signing up and switching accounts (issue 14, point 3)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import CSRF_FIELD, Browser, unique_email
from tests.oauth.flows import (
    REDIRECT_URI,
    Company,
    authorize_query,
    consent,
    get_code,
    pkce_pair,
    redirect_params,
    register_company,
)


def _authorize_path(company: Company, scope: str | None = None) -> str:
    _, challenge = pkce_pair()
    return f"/oauth/authorize?{authorize_query(company, challenge=challenge, scope=scope)}"


def _durations(page: str) -> dict[str, str]:
    """Each offered duration's value and the words shown beside it."""
    found = re.findall(r'name="expiry" value="([^"]+)"[^>]*>\s*<span>(.*?)</span>', page, re.S)
    return {key: " ".join(re.sub(r"<[^>]+>", "", text).split()) for key, text in found}


def _stored_grant(db_session: Session) -> Grant:
    db_session.rollback()
    return db_session.exec(select(Grant)).one()


def test_nothing_on_the_consent_screen_is_ticked_or_chosen_in_advance(
    browser: Browser, company: Company
) -> None:
    page = browser.client.get(_authorize_path(company))
    assert page.text.count('type="checkbox" name="scope"') == 3
    assert re.findall(r'<input type="(?:checkbox|radio)"[^>]*\bchecked\b', page.text) == []


def test_allow_and_deny_are_offered_alike(browser: Browser, company: Company) -> None:
    page = browser.client.get(_authorize_path(company)).text
    allow = re.search(r'<button([^>]*) value="approve">', page)
    deny = re.search(r'<button([^>]*) value="deny">', page)
    assert allow and deny
    assert allow.group(1) == deny.group(1)


def test_allowing_without_choosing_how_long_shows_the_screen_again_with_the_ticks_kept(
    browser: Browser, company: Company, db_session: Session
) -> None:
    page = browser.client.get(_authorize_path(company))
    path = page.url.raw_path.decode()
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    response = browser.client.post(path, data={CSRF_FIELD: token.group(1), "decision": "approve",
                                                "scope": ["profile.email:read"]},
                                   follow_redirects=False)
    assert response.status_code == 400
    assert "Choose how long" in response.text
    assert re.search(r'value="profile.email:read" checked', response.text)
    assert not re.search(r'value="marketing.email" checked', response.text)
    db_session.rollback()
    assert db_session.exec(select(Grant)).first() is None


def test_a_capped_grant_is_not_offered_until_revoked_and_every_choice_shows_its_end(
    browser: Browser, company: Company, clock: FrozenClock
) -> None:
    page = browser.client.get(_authorize_path(company, scope="marketing.email")).text
    offered = _durations(page)
    assert "Until you revoke it" not in page
    ends = clock.now() + timedelta(days=365)
    assert offered == {"30d": f"30 days (ends {(clock.now() + timedelta(days=30)):%Y-%m-%d})",
                       "1y": f"1 year (ends {ends:%Y-%m-%d})"}


def test_whatever_is_chosen_the_stored_end_is_the_one_the_screen_showed(
    browser: Browser, company: Company, db_session: Session
) -> None:
    offered = _durations(browser.client.get(_authorize_path(company)).text)
    assert list(offered) == ["30d", "1y"]
    for key, words in offered.items():
        # The customer leaves out the marketing item, whose cap set the dates shown.
        get_code(browser, company, scopes=["profile.email:read"], expiry=key)
        expires_at = _stored_grant(db_session).expires_at
        assert words.endswith("(no end date)" if expires_at is None
                              else f"(ends {expires_at:%Y-%m-%d})"), (key, words)


def test_until_revoked_is_offered_only_where_nothing_caps_it_and_is_stored_without_end(
    browser: Browser, db_session: Session, runtime: Runtime
) -> None:
    seeker = register_company(db_session, runtime, notice={"intents.bikes": ["Offer you bikes"]})
    page = browser.client.get(_authorize_path(seeker, scope="intents.bikes")).text
    assert _durations(page)["never"] == "Until you revoke it (no end date)"
    get_code(browser, seeker, scope="intents.bikes", expiry="never")
    assert _stored_grant(db_session).expires_at is None


def test_the_company_website_and_privacy_notice_are_links(
    browser: Browser, company: Company
) -> None:
    page = browser.client.get(_authorize_path(company)).text
    for url in (company.row.homepage, company.row.privacy_policy_url):
        link = re.search(rf'<a href="{re.escape(url)}"([^>]*)>', page)
        assert link, url
        assert 'rel="noopener noreferrer"' in link.group(1)


def test_the_screen_says_who_is_signed_in_and_switching_account_comes_back_to_it(
    browser: Browser, company: Company
) -> None:
    path = _authorize_path(company)
    page = browser.client.get(path).text
    assert "Signed in as <strong>ada@example.org</strong>" in page
    switch = re.search(r'<form method="post" action="/signout" class="signed-in">(.*?)</form>',
                       page, re.S)
    assert switch
    assert f'name="next" value="{path.replace("&", "&amp;")}"' in switch.group(1)
    token = re.search(r'name="_csrf_token" value="([^"]+)"', switch.group(1))
    assert token
    response = browser.client.post("/signout", data={CSRF_FIELD: token.group(1), "next": path},
                                   follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/signin?next={quote(path, safe='')}"
    assert browser.client.get(path, follow_redirects=False).status_code == 303


@pytest.mark.parametrize("how", ["sign_up", "sign_in"])
def test_a_visitor_from_a_company_link_comes_back_to_its_consent_screen(
    client: TestClient[Litestar], company: Company, customer: object, how: str
) -> None:
    path = _authorize_path(company)
    visitor = Browser(client)
    to_signin = client.get(path, follow_redirects=False).headers["location"]
    signin = client.get(to_signin)
    assert f"{company.row.name} asks for access to your vault" in signin.text
    next_field = re.search(r'name="next" value="([^"]+)"', signin.text)
    assert next_field
    target = next_field.group(1).replace("&amp;", "&")
    if how == "sign_up":
        to_signup = re.search(r'<a href="(/signup\?next=[^"]+)">Create your vault</a>',
                              signin.text)
        assert to_signup
        signup_page = to_signup.group(1).replace("&amp;", "&")
        assert company.row.name in client.get(signup_page).text
        password = "correct horse battery"
        response = visitor.submit("/signup", {"email": unique_email(), "password": password,
                                              "password_confirm": password, "next": target},
                                  page=signup_page)
    else:
        response = visitor.submit("/signin", {"email": "ada@example.org",
                                              "password": "correct horse battery",
                                              "next": target}, page=to_signin)
    assert response.status_code == 303
    assert response.headers["location"] == path
    screen = client.get(path)
    assert f"{company.row.name} asks for access" in screen.text
    approved = consent(visitor, path.split("?", 1)[1], expiry="30d")
    assert redirect_params(approved)["state"] == "st-123"
    assert approved.headers["location"].startswith(REDIRECT_URI)
