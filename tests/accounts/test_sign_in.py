"""Sign-up, sign-in, sessions, throttling, CSRF and cookies, through the portal's forms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, func, select

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Account, WebSession
from cmr_vault.app import create_app
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import BASE_URL, FrozenClock
from tests.factories import DEFAULT_PASSWORD, Browser, make_customer, unique_email

SESSION_COOKIE = "cmr_session"
T = TypeVar("T")


def _accounts(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Account)).one()


def test_sign_up_signs_in_and_shows_the_profile(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    email = browser.sign_up()
    page = client.get("/profile")
    assert page.status_code == 200
    assert f'value="{email}"' in page.text


def test_session_cookie_is_httponly_and_samesite_lax(client: TestClient[Litestar]) -> None:
    browser = Browser(client)
    token = browser.csrf_token("/signup")
    email = unique_email()
    response = client.post(
        "/signup",
        data={
            "email": email,
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    # Plain-http loopback is the one place without `Secure` (settings test covers https).


def test_wrong_password_is_refused_and_changes_nothing(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    customer = make_customer(db_session, runtime, email="kim@example.org")
    browser = Browser(client)
    response = browser.sign_in("kim@example.org", "not the password")
    assert response.status_code == 401
    assert "do not match" in response.text
    assert client.get("/profile", follow_redirects=False).status_code == 303
    db_session.rollback()
    assert db_session.get(Account, customer.id).password_hash == customer.password_hash


def test_repeated_failures_are_throttled_with_retry_after(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    make_customer(db_session, runtime, email="lee@example.org")
    browser = Browser(client)
    for _ in range(runtime.settings.sign_in_max_failures):
        assert browser.sign_in("lee@example.org", "wrong password!").status_code == 401
    throttled = browser.sign_in("lee@example.org")
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    clock.advance(seconds=runtime.settings.sign_in_window_seconds + 1)
    assert browser.sign_in("lee@example.org").status_code == 303


def test_failures_for_an_unknown_address_never_block_another_accounts_sign_in(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="demo@example.org")
    browser = Browser(client)
    for _ in range(runtime.settings.sign_in_max_failures + 1):
        assert browser.sign_in("nobody@example.org", "wrong password!").status_code in (401, 429)
    assert browser.sign_in("nobody@example.org", "wrong password!").status_code == 429
    assert browser.sign_in("demo@example.org").status_code == 303


def test_one_accounts_throttle_does_not_lock_out_another_account_from_the_same_address(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="rae@example.org")
    make_customer(db_session, runtime, email="sam@example.org")
    browser = Browser(client)
    for _ in range(runtime.settings.sign_in_max_failures):
        browser.sign_in("rae@example.org", "wrong password!")
    assert browser.sign_in("rae@example.org").status_code == 429
    assert browser.sign_in("sam@example.org").status_code == 303


def test_credential_stuffing_from_one_address_is_slowed_by_the_address_limit(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"sign_in_address_max_failures": 8})
    make_customer(db_session, runtime, email="tia@example.org")
    browser = Browser(client)
    for n in range(8):
        assert browser.sign_in(f"stuffed{n}@example.org", "leaked password").status_code == 401
    throttled = browser.sign_in("tia@example.org")
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    clock.advance(seconds=runtime.settings.sign_in_window_seconds + 1)
    assert browser.sign_in("tia@example.org").status_code == 303


def test_sign_ups_from_one_address_are_limited_with_retry_after(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    browser = Browser(client)
    for _ in range(runtime.settings.signups_per_minute):
        browser.sign_up()
        client.cookies.clear()
    refused = browser.submit("/signup", {"email": unique_email(), "password": DEFAULT_PASSWORD,
                                         "password_confirm": DEFAULT_PASSWORD})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert "Too many sign-ups" in refused.text
    assert _accounts(db_session) == runtime.settings.signups_per_minute


def test_sign_in_rotates_the_session_token(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="max@example.org")
    browser = Browser(client)
    browser.sign_in("max@example.org")
    first = client.cookies.get(SESSION_COOKIE)
    browser.sign_in("max@example.org")
    second = client.cookies.get(SESSION_COOKIE)
    assert first and second and first != second
    client.cookies.set(SESSION_COOKIE, first)
    assert client.get("/profile", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="ola@example.org")
    browser = Browser(client)
    browser.sign_in("ola@example.org")
    token = client.cookies.get(SESSION_COOKIE)
    assert browser.submit("/signout", {}, page="/profile").status_code == 303
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/profile", follow_redirects=False).status_code == 303
    assert db_session.exec(select(func.count()).select_from(WebSession)).one() == 0


def test_password_change_ends_other_sessions(
    app: Litestar, db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="pia@example.org")
    with (
        TestClient(app, base_url="http://127.0.0.1:8000") as laptop,
        TestClient(app, base_url="http://127.0.0.1:8000") as phone,
    ):
        Browser(laptop).sign_in("pia@example.org")
        Browser(phone).sign_in("pia@example.org")
        changed = Browser(laptop).submit(
            "/account/password",
            {
                "current_password": DEFAULT_PASSWORD,
                "new_password": "a new long password",
                "new_password_confirm": "a new long password",
            },
        )
        assert changed.status_code == 200
        assert "Password changed" in changed.text
        assert laptop.get("/profile", follow_redirects=False).status_code == 200
        assert phone.get("/profile", follow_redirects=False).status_code == 303
    with TestClient(app, base_url="http://127.0.0.1:8000") as other:
        assert Browser(other).sign_in("pia@example.org", "a new long password").status_code == 303


def test_form_without_csrf_token_is_refused_and_changes_nothing(
    client: TestClient[Litestar], db_session: Session
) -> None:
    client.get("/signup")
    email = unique_email()
    response = client.post(
        "/signup",
        data={
            "email": email,
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
        },
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 403
    assert "This form had expired, so nothing was saved" in response.text
    assert f'value="{email}"' in response.text
    assert DEFAULT_PASSWORD not in response.text
    assert _accounts(db_session) == 0


def test_malformed_email_and_short_password_are_explained(
    client: TestClient[Litestar], db_session: Session
) -> None:
    browser = Browser(client)
    bad_email = browser.submit(
        "/signup",
        {
            "email": "not-an-email",
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
        },
    )
    assert bad_email.status_code == 400
    assert "not a valid e-mail address" in bad_email.text
    short = browser.submit(
        "/signup", {"email": unique_email(), "password": "short", "password_confirm": "short"}
    )
    assert short.status_code == 400
    assert "10 to 256 characters" in short.text
    assert _accounts(db_session) == 0


def test_second_account_with_the_same_email_is_refused(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="Same@Example.org")
    response = Browser(client).submit(
        "/signup",
        {
            "email": "same@example.org",
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 400
    assert "already exists" in response.text
    assert _accounts(db_session) == 1


def test_sign_in_never_redirects_off_site(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime
) -> None:
    make_customer(db_session, runtime, email="quinn@example.org")
    browser = Browser(client)
    response = browser.submit(
        "/signin",
        {
            "email": "quinn@example.org",
            "password": DEFAULT_PASSWORD,
            "next": "//evil.example/steal",
        },
        page="/signin",
    )
    assert response.headers["location"] == "/profile"


class _CountingHasher:
    """The tests' cheap hasher, counting how many hashes or checks run at the same moment."""

    def __init__(self, inner: PasswordHasher) -> None:
        self._inner, self._lock = inner, threading.Lock()
        self.running = self.most = 0

    def _counted(self, work: Callable[[], T]) -> T:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # as long as a production hash, so overlaps happen
            return work()
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, password: str) -> str:
        return self._counted(lambda: self._inner.hash(password))

    def verify(self, password_hash: str, password: str) -> bool:
        return self._counted(lambda: self._inner.verify(password_hash, password))

    def check_needs_rehash(self, password_hash: str) -> bool:
        return self._inner.check_needs_rehash(password_hash)


def test_concurrent_sign_ins_hash_at_most_the_configured_number_at_once(
    settings: Settings, runtime: Runtime, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = _CountingHasher(accounts_service._hasher)
    monkeypatch.setattr(accounts_service, "_hasher", hasher)
    runtime.settings = settings.model_copy(update={"password_hashes_at_once": 1})
    emails = [f"crowd{n}@example.org" for n in range(6)]
    for email in emails:
        make_customer(db_session, runtime, email=email)
    with TestClient(create_app(runtime.settings, runtime=runtime), base_url=BASE_URL) as client:
        browsers = [Browser(client) for _ in emails]
        tokens = [browser.csrf_token() for browser in browsers]
        with ThreadPoolExecutor(len(emails)) as pool:
            statuses = list(pool.map(lambda email, token: client.post(
                "/signin", data={"email": email, "password": DEFAULT_PASSWORD,
                                 "_csrf_token": token}, follow_redirects=False).status_code,
                emails, tokens))
    assert statuses == [303] * len(emails)
    assert hasher.most == 1


class _HasherWaitingForARead:
    """The tests' cheap hasher, which lets each hash wait (up to 5 s) for another request."""

    def __init__(self, inner: PasswordHasher) -> None:
        self._inner = inner
        self.hashing, self.read_done = threading.Event(), threading.Event()
        self.read_while_hashing = False

    def hash(self, password: str) -> str:
        self.hashing.set()
        self.read_while_hashing = self.read_done.wait(timeout=5)
        return self._inner.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        return self._inner.verify(password_hash, password)

    def check_needs_rehash(self, password_hash: str) -> bool:
        return self._inner.check_needs_rehash(password_hash)


def test_a_sign_up_hashes_its_password_without_holding_up_other_requests(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = _HasherWaitingForARead(accounts_service._hasher)
    monkeypatch.setattr(accounts_service, "_hasher", hasher)
    browser = Browser(client)
    token = browser.csrf_token("/signup")
    with ThreadPoolExecutor(1) as pool:
        signing_up = pool.submit(client.post, "/signup", data={
            "email": unique_email(), "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD, "_csrf_token": token},
            follow_redirects=False)
        assert hasher.hashing.wait(timeout=10)
        assert client.get("/").status_code == 200  # the home page looks up the session
        hasher.read_done.set()
        assert signing_up.result().status_code == 303
    assert hasher.read_while_hashing
