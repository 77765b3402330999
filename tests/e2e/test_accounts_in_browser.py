"""Account recovery, e-mail confirmation, the company dashboard and the auditor's company
report, in Chromium, in English and German, against the real server sending real e-mail to a
loopback SMTP server.

Every page state visited is checked with axe-core (0 critical, 0 serious) and for sideways
scrolling on a 390 px phone (`check_state`).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.e2e.accessibility import check_state
from tests.e2e.conftest import _free_port, register_company

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
LANGUAGES = ["en", "de"]
PASSWORD = "a long browser password"
NEW_PASSWORD = "a fresh browser passphrase"
MAIL_WAIT_SECONDS = 15
# A loaded two-core machine has taken over 20 s to start the server.
START_WAIT_SECONDS = 120
WORDS = {
    "en": {"reset subject": "Reset your CMR Vault password", "sent": "If an account uses",
           "saved": "Your new password is saved", "unconfirmed": "not confirmed yet",
           "confirmed": "your e-mail address is confirmed", "dashboard": "your relationships",
           "report": "Report:", "given": "given"},
    "de": {"reset subject": "Ihr Passwort für CMR Vault zurücksetzen",
           "sent": "Wenn ein Konto diese Adresse verwendet",
           "saved": "Ihr neues Passwort ist gespeichert", "unconfirmed": "noch nicht bestätigt",
           "confirmed": "Ihre E-Mail-Adresse ist bestätigt",
           "dashboard": "Ihre Kundenbeziehungen", "report": "Bericht:", "given": "erteilt"},
}


class Mailbox:
    """Every message the loopback SMTP server received."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def wait_for(self, to: str) -> EmailMessage:
        """The newest mail to `to`, waiting (boundedly) for the server's background send."""
        deadline = time.monotonic() + MAIL_WAIT_SECONDS
        while time.monotonic() < deadline:
            found = [m for m in self.mails if m["To"] == to]
            if found:
                self.mails = [m for m in self.mails if m is not found[-1]]
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to} within {MAIL_WAIT_SECONDS} s")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def mail_vault(tmp_path_factory: pytest.TempPathFactory,
               mailbox: tuple[Mailbox, int]) -> Iterator[tuple[str, str]]:
    """`cmr-vault serve` with an SMTP relay on loopback and figures shown from 2 customers;
    yields (base URL, data directory)."""
    data_dir = tmp_path_factory.mktemp("mail-vault") / "var"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CMR_VAULT_DATA_DIR": str(data_dir), "CMR_VAULT_BASE_URL": base_url,
           "CMR_VAULT_SMTP_HOST": "127.0.0.1", "CMR_VAULT_SMTP_PORT": str(mailbox[1]),
           "CMR_VAULT_K_ANONYMITY_THRESHOLD": "2"}
    for name in ("CMR_VAULT_DATABASE_URL", "CMR_VAULT_KEYSTORE_URL", "CMR_VAULT_KEK"):
        env.pop(name, None)
    command = [sys.executable, "-m", "cmr_vault"]
    subprocess.run([*command, "init"], env=env, check=True, capture_output=True)
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen([*command, "serve", "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(base_url, server)
        yield base_url, str(data_dir)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def _wait_until_healthy(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the vault exited during start-up")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise RuntimeError(f"the vault did not become healthy within {START_WAIT_SECONDS} s")


def _speak(page: Any, vault: str, language: str, then: str) -> None:
    page.goto(f"{vault}/language/{language}?next={then}")
    page.wait_for_url(f"{vault}{then}")


def _link_in(mail: EmailMessage, vault: str, path: str) -> str:
    found = re.findall(rf"{re.escape(vault)}{re.escape(path)}\?token=\S+", mail.get_content())
    assert found, mail.get_content()
    return found[0]


def _sign_up(page: Any, vault: str, email: str) -> None:
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD)
    page.click("form[action='/signup'] button[type=submit]")
    page.wait_for_url(f"{vault}/profile")


def _sign_in(page: Any, vault: str, email: str, password: str, lands_on: str) -> None:
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{vault}{lands_on}")


def _sign_out(page: Any) -> None:
    page.locator("nav.menu-wide form[action='/signout'] button").click()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_forgotten_password_is_reset_by_e_mail(mail_vault: tuple[str, str], mailbox: Any,
                                                 page: Any, language: str) -> None:
    vault, _data_dir = mail_vault
    words, box = WORDS[language], mailbox[0]
    email = f"forgot-{secrets.token_hex(3)}@example.org"
    _speak(page, vault, language, "/signup")
    _sign_up(page, vault, email)
    box.wait_for(email)  # the confirmation mail; this journey does not need it
    _sign_out(page)

    page.goto(f"{vault}/signin")
    check_state(page, f"sign-in ({language})")
    page.click("a[href='/signin/forgot']")
    check_state(page, f"forgot password ({language})")
    page.fill("#email", email)
    page.click("form[action='/signin/forgot'] button[type=submit]")
    assert words["sent"] in page.content()
    check_state(page, f"link sent ({language})")

    mail = box.wait_for(email)
    assert mail["Subject"] == words["reset subject"]
    assert mail["Content-Language"] == language
    page.goto(_link_in(mail, vault, "/account/reset"))
    check_state(page, f"choose a new password ({language})")
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#new_password_confirm", NEW_PASSWORD)
    page.click("form[action='/account/reset'] button[type=submit]")
    page.wait_for_url(f"{vault}/signin?reset=1")
    assert words["saved"] in page.content()
    check_state(page, f"password reset, sign in ({language})")
    _sign_in(page, vault, email, NEW_PASSWORD, "/profile")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_new_vault_confirms_its_e_mail_address(mail_vault: tuple[str, str], mailbox: Any,
                                                 page: Any, language: str) -> None:
    vault, _data_dir = mail_vault
    words, box = WORDS[language], mailbox[0]
    email = f"confirm-{secrets.token_hex(3)}@example.org"
    _speak(page, vault, language, "/signup")
    check_state(page, f"sign-up ({language})")
    _sign_up(page, vault, email)
    assert words["unconfirmed"] in page.content()
    check_state(page, f"profile, unconfirmed ({language})")

    page.goto(_link_in(box.wait_for(email), vault, "/account/confirm"))
    check_state(page, f"confirm e-mail ({language})")
    page.click("form[action='/account/confirm'] button[type=submit]")
    assert words["confirmed"] in page.content()
    check_state(page, f"e-mail confirmed ({language})")
    page.goto(f"{vault}/profile")
    assert words["unconfirmed"] not in page.content()


def _connect(page: Any, vault: str, client_id: str, site: str) -> None:
    """A new customer consents on the consent screen (what makes figures to show)."""
    page.route(f"{site}/**", lambda route: route.fulfill(body="ok"))
    page.goto(f"{vault}/signup")
    _sign_up(page, vault, f"fan-{secrets.token_hex(3)}@example.org")
    page.goto(f"{vault}/oauth/authorize?response_type=code&client_id={client_id}"
              f"&redirect_uri={site}/cb&scope=profile.email:read&state=s"
              "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
              "&code_challenge_method=S256")
    page.check("input[value='profile.email:read']")
    page.check("input[name='expiry'][value='30d']")
    page.click("button[name='decision'][value='approve']")
    page.wait_for_url(f"{site}/cb**")
    page.context.clear_cookies()  # the next customer starts signed out


@pytest.fixture(scope="module")
def busy_company(mail_vault: tuple[str, str], browser: Any) -> tuple[str, str, str]:
    """A company two customers connected to: (client id, secret, name)."""
    vault, data_dir = mail_vault
    name = f"Lighthouse {secrets.token_hex(2)}"
    site = f"https://{name.lower().replace(' ', '-')}.example"
    client_id, secret = register_company(vault, data_dir, name=name, site=site,
                                         scopes=["profile.email:read=Send your receipts"])
    context = browser.new_context()
    page = context.new_page()
    for _ in range(2):
        _connect(page, vault, client_id, site)
    context.close()
    return client_id, secret, name


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_company_signs_in_to_its_dashboard(mail_vault: tuple[str, str],
                                             busy_company: tuple[str, str, str], page: Any,
                                             language: str) -> None:
    vault, _data_dir = mail_vault
    client_id, secret, name = busy_company
    words = WORDS[language]
    _speak(page, vault, language, "/company/signin")
    check_state(page, f"company sign-in ({language})")
    page.fill("#client_id", client_id)
    page.fill("#client_secret", secret)
    page.click("form[action='/company/signin'] button[type=submit]")
    page.wait_for_url(f"{vault}/company/dashboard")

    assert f"{name}: {words['dashboard']}" in page.content()
    menu = page.locator("nav.menu-wide")
    assert menu.locator("a[href='/company/dashboard']").count() == 1
    assert menu.locator("a[href='/profile']").count() == 0
    grants = page.locator("#grants")
    assert grants.locator("svg.chart title").count() == 1
    assert grants.get_by_role("row", name=f"{words['given']} 2", exact=True).count() == 1
    assert grants.locator("tfoot td").inner_text() == "2"
    check_state(page, f"company dashboard ({language})")


def _auditor(vault: str, data_dir: str) -> str:
    email = f"auditor-{secrets.token_hex(3)}@example.org"
    env = {**os.environ, "CMR_VAULT_DATA_DIR": data_dir, "CMR_VAULT_BASE_URL": vault}
    subprocess.run([sys.executable, "-m", "cmr_vault", "auditors", "add", email, "--password",
                    PASSWORD], env=env, check=True, capture_output=True)
    return email


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_auditor_opens_a_company_report_from_the_log(
    mail_vault: tuple[str, str], busy_company: tuple[str, str, str], page: Any, language: str,
) -> None:
    vault, data_dir = mail_vault
    client_id, _secret, name = busy_company
    email = _auditor(vault, data_dir)
    _speak(page, vault, language, "/signin")
    _sign_in(page, vault, email, PASSWORD, "/auditor")
    assert f"company:{client_id}</td>" not in page.content()
    check_state(page, f"audit log ({language})")

    page.locator("table.log a", has_text=name).first.click()
    page.wait_for_url(re.compile(r".*/auditor/reports\?company="))
    assert f"{WORDS[language]['report']} {name}" in page.content()
    assert page.locator("svg.chart").count() >= 1
    check_state(page, f"company report ({language})")

    page.locator("nav.menu-wide a[href='/auditor/reports']").click()
    page.locator(".company-list a", has_text=name).click()
    page.wait_for_url(re.compile(r".*/auditor/reports\?company="))
    check_state(page, f"company reports ({language})")
    page.goto(f"{vault}/auditor")
    page.locator("table.log td:first-child a").first.click()
    page.wait_for_url(re.compile(r".*/auditor/entries/\d+"))
    check_state(page, f"log entry ({language})")


def test_the_server_log_names_no_address_and_no_link(mail_vault: tuple[str, str]) -> None:
    """Run last in the module: whatever the journeys above made the server write down."""
    log = (Path(mail_vault[1]) / "server.log").read_text()
    assert "@example.org" not in log
    assert "token=" not in log
