"""Forgotten passwords and e-mail confirmation: single-use links that expire, and no way to
learn from the answers whether an address has an account."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from cmr_vault.accounts import recovery
from cmr_vault.accounts.exceptions import LinkNotValid
from cmr_vault.accounts.models import Account, AccountToken, TokenPurpose
from cmr_vault.app import create_app
from cmr_vault.audit.models import AuditEntry
from cmr_vault.marketing.delivery import MemoryMailer
from cmr_vault.runtime import Runtime
from tests.conftest import BASE_URL, FrozenClock
from tests.factories import DEFAULT_PASSWORD, Browser, make_customer

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def outbox(runtime: Runtime) -> MemoryMailer:
    """The vault's own e-mails, kept in memory instead of sent."""
    runtime.account_mailer_override = MemoryMailer()
    return runtime.account_mailer_override


@pytest.fixture
def mail_client(runtime: Runtime, outbox: MemoryMailer) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(runtime.settings, runtime=runtime), base_url=BASE_URL) as client:
        yield client


def _link(outbox: MemoryMailer, path: str) -> str:
    found = re.findall(
        rf"{re.escape(BASE_URL)}({re.escape(path)}\?token=\S+)", outbox.sent[-1].body
    )
    assert found, outbox.sent[-1].body
    return found[0]


def _token(link: str) -> str:
    return link.partition("token=")[2]


def _ask_for_reset(client: TestClient[Litestar], email: str) -> object:
    return Browser(client).submit("/signin/forgot", {"email": email})


def _reset(client: TestClient[Litestar], link: str, password: str = NEW_PASSWORD) -> object:
    return Browser(client).submit(
        "/account/reset",
        {"token": _token(link), "new_password": password, "new_password_confirm": password},
        page="/signin/forgot",
    )


def test_a_forgotten_password_is_reset_by_the_mailed_link_and_every_session_ends(
    mail_client: TestClient[Litestar],
    other_client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    outbox: MemoryMailer,
) -> None:
    make_customer(db_session, runtime, email="mia@example.org")
    elsewhere = Browser(other_client)
    assert elsewhere.sign_in("mia@example.org").status_code == 303

    answer = _ask_for_reset(mail_client, "Mia@Example.org")
    assert answer.status_code == 200
    assert "If an account uses this address" in answer.text
    assert [mail.address for mail in outbox.sent] == ["Mia@Example.org"]
    link = _link(outbox, "/account/reset")
    assert "30 minutes" in outbox.sent[-1].body

    done = _reset(mail_client, link)
    assert done.status_code == 303
    assert done.headers["location"] == "/signin?reset=1"
    assert other_client.get("/profile", follow_redirects=False).status_code == 303
    browser = Browser(mail_client)
    assert browser.sign_in("mia@example.org", DEFAULT_PASSWORD).status_code == 401
    assert browser.sign_in("mia@example.org", NEW_PASSWORD).status_code == 303


def test_a_reset_link_works_once(
    mail_client: TestClient[Litestar], db_session: Session, runtime: Runtime, outbox: MemoryMailer
) -> None:
    make_customer(db_session, runtime, email="ola@example.org")
    _ask_for_reset(mail_client, "ola@example.org")
    link = _link(outbox, "/account/reset")
    assert _reset(mail_client, link).status_code == 303

    again = _reset(mail_client, link, "yet another passphrase")
    assert again.status_code == 400
    assert "no longer valid" in again.text
    assert Browser(mail_client).sign_in("ola@example.org", NEW_PASSWORD).status_code == 303


def test_a_reset_link_expires_after_thirty_minutes(
    mail_client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    outbox: MemoryMailer,
    clock: FrozenClock,
) -> None:
    make_customer(db_session, runtime, email="pia@example.org")
    _ask_for_reset(mail_client, "pia@example.org")
    link = _link(outbox, "/account/reset")
    clock.advance(minutes=29)
    assert mail_client.get(link).status_code == 200
    clock.advance(minutes=1)

    assert mail_client.get(link).status_code == 400
    assert _reset(mail_client, link).status_code == 400
    assert Browser(mail_client).sign_in("pia@example.org").status_code == 303


def test_opening_the_link_does_not_spend_it(
    mail_client: TestClient[Litestar], db_session: Session, runtime: Runtime, outbox: MemoryMailer
) -> None:
    """Mail scanners open links on their own; only the form's button uses the link."""
    make_customer(db_session, runtime, email="ida@example.org")
    _ask_for_reset(mail_client, "ida@example.org")
    link = _link(outbox, "/account/reset")
    assert mail_client.get(link).status_code == 200
    assert mail_client.get(link).status_code == 200
    assert _reset(mail_client, link).status_code == 303


def test_a_newer_link_replaces_the_older_one(
    mail_client: TestClient[Litestar], db_session: Session, runtime: Runtime, outbox: MemoryMailer
) -> None:
    make_customer(db_session, runtime, email="eva@example.org")
    _ask_for_reset(mail_client, "eva@example.org")
    first = _link(outbox, "/account/reset")
    _ask_for_reset(mail_client, "eva@example.org")
    second = _link(outbox, "/account/reset")

    assert _reset(mail_client, first).status_code == 400
    assert _reset(mail_client, second).status_code == 303


def test_changing_the_password_kills_a_reset_link_asked_for_before(
    mail_client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    outbox: MemoryMailer,
) -> None:
    make_customer(db_session, runtime, email="liv@example.org")
    _ask_for_reset(mail_client, "liv@example.org")
    link = _link(outbox, "/account/reset")
    browser = Browser(mail_client)
    browser.sign_in("liv@example.org")
    changed = browser.submit(
        "/account/password",
        {
            "current_password": DEFAULT_PASSWORD,
            "new_password": "the owner's own choice",
            "new_password_confirm": "the owner's own choice",
        },
    )
    assert changed.status_code == 200

    assert _reset(mail_client, link).status_code == 400
    assert browser.sign_in("liv@example.org", "the owner's own choice").status_code == 303


def test_a_tampered_link_is_refused(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    account = make_customer(db_session, runtime)
    link = recovery.issue(
        db_session, clock=clock, account=account, purpose=TokenPurpose.RESET_PASSWORD
    )
    selector, _, verifier = link.token.partition(".")
    changed = verifier[:-1] + ("B" if verifier.endswith("A") else "A")
    for forged in (
        f"{selector}.{changed}",
        f"{selector}.",
        selector,
        "",
        "x.y",
        f"{selector}.{verifier}.extra",
    ):
        with pytest.raises(LinkNotValid):
            recovery.spend(
                db_session, clock=clock, token=forged, purpose=TokenPurpose.RESET_PASSWORD
            )
    with pytest.raises(LinkNotValid):  # a reset link does not confirm an address
        recovery.spend(
            db_session, clock=clock, token=link.token, purpose=TokenPurpose.CONFIRM_EMAIL
        )
    assert (
        recovery.spend(
            db_session, clock=clock, token=link.token, purpose=TokenPurpose.RESET_PASSWORD
        ).id
        == account.id
    )


def test_the_database_holds_no_usable_link_and_no_address(
    mail_client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    outbox: MemoryMailer,
) -> None:
    make_customer(db_session, runtime, email="zoe@example.org")
    _ask_for_reset(mail_client, "zoe@example.org")
    token = _token(_link(outbox, "/account/reset"))
    db_session.rollback()
    row = db_session.exec(select(AccountToken)).one()
    assert token.partition(".")[2] not in row.verifier_hash
    dump = "\n".join(str(r) for r in db_session.execute(text("SELECT * FROM account_token")))
    dump += "\n".join(str(r) for r in db_session.execute(text("SELECT * FROM audit_entry")))
    assert token.partition(".")[2] not in dump
    assert "zoe@example.org" not in dump.casefold()


def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    mail_client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    outbox: MemoryMailer,
) -> None:
    make_customer(db_session, runtime, email="known@example.org")
    known = _ask_for_reset(mail_client, "known@example.org")
    unknown = _ask_for_reset(mail_client, "nobody@example.org")

    assert unknown.status_code == known.status_code == 200
    assert _without_csrf(unknown.text) == _without_csrf(known.text)
    assert [mail.address for mail in outbox.sent] == ["known@example.org"]
    db_session.rollback()
    asked = db_session.exec(
        select(AuditEntry).where(AuditEntry.action == "account.reset-requested")).all()
    assert len(asked) == 2  # the same work either way, and no address in either entry
    assert "nobody" not in str([(a.subject, a.details) for a in asked])


def _without_csrf(html: str) -> str:
    return re.sub(r'name="_csrf_token" value="[^"]+"', "", html)


def test_asking_too_often_is_refused_alike_for_known_and_unknown_addresses(
    mail_client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    outbox: MemoryMailer,
) -> None:
    make_customer(db_session, runtime, email="busy@example.org")
    limit = runtime.settings.account_mails_per_minute
    for address in ("busy@example.org", "ghost@example.org"):
        with TestClient(create_app(runtime.settings, runtime=runtime), base_url=BASE_URL) as client:
            answers = [_ask_for_reset(client, address).status_code for _ in range(limit + 1)]
        assert answers == [200] * limit + [429]
    assert len(outbox.sent) == limit


def test_sign_up_mails_a_confirmation_link_that_confirms_the_address_once(
    mail_client: TestClient[Litestar],
    db_session: Session,
    outbox: MemoryMailer,
) -> None:
    browser = Browser(mail_client)
    email = browser.sign_up()
    assert "not confirmed yet" in mail_client.get("/profile").text
    assert [mail.address for mail in outbox.sent] == [email]
    link = _link(outbox, "/account/confirm")

    assert mail_client.get(link).status_code == 200
    db_session.rollback()
    assert db_session.exec(select(Account)).one().email_confirmed_at is None
    done = browser.submit("/account/confirm", {"token": _token(link)}, page="/profile")
    assert done.status_code == 200
    assert "confirmed" in done.text
    assert "not confirmed yet" not in mail_client.get("/profile").text
    assert (
        browser.submit("/account/confirm", {"token": _token(link)}, page="/profile").status_code
        == 400
    )


def test_a_changed_address_is_unconfirmed_and_an_old_link_does_not_confirm_it(
    mail_client: TestClient[Litestar],
    db_session: Session,
    outbox: MemoryMailer,
) -> None:
    browser = Browser(mail_client)
    browser.sign_up("first@example.org")
    old_link = _link(outbox, "/account/confirm")
    saved = browser.submit("/profile", {"email": "second@example.org"})
    assert saved.status_code == 303

    assert (
        browser.submit("/account/confirm", {"token": _token(old_link)}, page="/profile").status_code
        == 400
    )
    resent = browser.submit("/account/confirm/resend", {}, page="/profile")
    assert resent.status_code == 303
    assert outbox.sent[-1].address == "second@example.org"
    new_link = _link(outbox, "/account/confirm")
    assert (
        browser.submit("/account/confirm", {"token": _token(new_link)}, page="/profile").status_code
        == 200
    )
    db_session.rollback()
    assert db_session.exec(select(Account)).one().email_confirmed_at is not None


def test_without_an_smtp_relay_the_page_says_recovery_is_not_available(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/signin/forgot")
    assert "cannot send e-mail" in page.text
    assert (
        Browser(client)
        .submit("/signin/forgot", {"email": "a@example.org"}, page="/signin")
        .status_code
        == 503
    )


def test_the_mail_speaks_the_language_of_the_page_it_was_asked_from(
    mail_client: TestClient[Litestar], db_session: Session, runtime: Runtime,
    outbox: MemoryMailer,
) -> None:
    make_customer(db_session, runtime, email="jan@example.org")
    mail_client.headers["Accept-Language"] = "de-DE,de;q=0.9"
    answer = _ask_for_reset(mail_client, "jan@example.org")

    assert "Wenn ein Konto diese Adresse verwendet" in answer.text
    mail = outbox.sent[-1]
    assert mail.language == "de"
    assert mail.subject == "Ihr Passwort für CMR Vault zurücksetzen"
    assert "innerhalb von 30 Minuten" in mail.body
    assert _reset(mail_client, _link(outbox, "/account/reset")).status_code == 303
