"""Pages for a forgotten password and for confirming an e-mail address.

A link from an e-mail opens a page with a button; only pressing it (a POST) spends the link,
because mail scanners open the links in e-mails on their own. Mails are built in the language
of the page they were asked from and sent after the answer (`BackgroundTask`), so whether a
mail went out cannot be read from how long the answer took.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from cmr_vault.accounts import mail as account_mail
from cmr_vault.accounts import recovery
from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.deps import Customer, provide_customer, session_cookie_name
from cmr_vault.accounts.exceptions import LinkNotValid
from cmr_vault.accounts.models import Account, TokenPurpose
from cmr_vault.crypto.blind_index import email_index
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import DomainError, TooManyRequests
from cmr_vault.i18n import gettext as _
from cmr_vault.portal.forms import form_text
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _page(name: str, status: int = 200, **context: Any) -> Template:
    return Template(template_name=f"accounts/{name}", context=context, status_code=status)


def _client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _count_mail(runtime: Runtime, db_session: DbSession, *, mailbox: str,
                asker: str | None = None) -> None:
    """Count one reset or confirmation mail (TooManyRequests past a limit), whether or not it
    will really be sent: a refusal must not tell a known address from an unknown one."""
    if asker is not None:
        runtime.rate_limits.account_mail_askers.hit(db_session, asker, "e-mail requests")
    runtime.rate_limits.account_mails.hit(db_session, mailbox, "e-mails to this address")


def confirmation_task(db_session: DbSession, runtime: Runtime, account: Account,
                      email: str) -> BackgroundTask | None:
    """A new confirmation link for `email` (a new vault's, or one asked for again), as a task
    that mails it after the answer; None when the vault cannot send e-mail."""
    mailer = runtime.account_mailer
    if mailer is None:
        return None
    link = recovery.issue(db_session, clock=runtime.clock, account=account,
                          purpose=TokenPurpose.CONFIRM_EMAIL)
    return BackgroundTask(account_mail.send_quietly, mailer, account_mail.confirmation_mail(
        address=email, base_url=runtime.settings.issuer, link=link))


class RecoveryPages(Controller):
    """Forgot password: ask for a link, follow it, choose a new password."""

    include_in_schema = False  # pages for people, not the machine API

    @get("/signin/forgot", sync_to_thread=False)
    def forgot_form(self, runtime: RuntimeDep) -> Template:
        """Ask for the address the vault signs in with."""
        return _page("forgot.html", sent=False, problems={}, email="",
                     available=runtime.account_mailer is not None)

    @post("/signin/forgot", status_code=200, sync_to_thread=True)
    def forgot(self, request: Request[Any, Any, Any], data: Form, db_session: DbSession,
               runtime: RuntimeDep) -> Response[Any]:
        """The same answer whether or not the address has an account; a link only when it
        has one, sent after the answer. Limited per asking address and per mailbox."""
        mailer = runtime.account_mailer
        if mailer is None:
            return _page("forgot.html", 503, sent=False, problems={}, email="", available=False)
        email = form_text(data, "email").strip()
        try:
            email = accounts_service.validate_email(email)
        except DomainError:
            return _page("forgot.html", 400, sent=False, email=email, available=True,
                         problems={"email": _("That e-mail address is not valid.")})
        keyring = runtime.keyring
        try:
            _count_mail(runtime, db_session, asker=_client_address(request),
                        mailbox=email_index(keyring.index_key, email))
        except TooManyRequests as exc:
            response = _page("forgot.html", 429, sent=False, email=email, available=True,
                             problems={"email": _("Too many requests: try again in a minute.")})
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        link = recovery.request_reset(db_session, clock=runtime.clock,
                                      index_key=keyring.index_key,
                                      pseudonym_key=keyring.pseudonym_key, email=email)
        response = _page("forgot.html", sent=True, problems={}, email="", available=True)
        if link is not None:
            response.background = BackgroundTask(
                account_mail.send_quietly, mailer, account_mail.reset_mail(
                    address=email, base_url=runtime.settings.issuer, link=link))
        return response

    @get("/account/reset", sync_to_thread=True)
    def reset_form(self, db_session: DbSession, runtime: RuntimeDep,
                   token: FromQuery[str] = "") -> Template:
        """The new-password form, if the link is still good (opening it does not spend it)."""
        try:
            recovery.peek(db_session, clock=runtime.clock, token=token,
                          purpose=TokenPurpose.RESET_PASSWORD)
        except LinkNotValid:
            return _page("link_invalid.html", 400, purpose="reset")
        return _page("reset.html", token=token, problems={})

    @post("/account/reset", status_code=200, sync_to_thread=True)
    def reset(self, data: Form, db_session: DbSession, runtime: RuntimeDep) -> Response[Any]:
        """Set the new password, spend the link, end every session, then ask to sign in."""
        token = form_text(data, "token")
        new = form_text(data, "new_password")
        if new != form_text(data, "new_password_confirm"):
            return _page("reset.html", 400, token=token,
                         problems={"new_password_confirm": _("The two passwords differ.")})
        try:
            recovery.reset_password(db_session, clock=runtime.clock,
                                    pseudonym_key=runtime.keyring.pseudonym_key, token=token,
                                    new_password=new)
        except LinkNotValid:
            return _page("link_invalid.html", 400, purpose="reset")
        except DomainError:
            return _page("reset.html", 400, token=token, problems={
                "new_password": _("Use 10 to 256 characters.")})
        response = Redirect(path="/signin?reset=1", status_code=303)
        response.delete_cookie(session_cookie_name(runtime), path="/")
        return response


class ConfirmationPages(Controller):
    """Confirming the e-mail address a vault was created (or changed) with."""

    include_in_schema = False  # pages for people, not the machine API

    @get("/account/confirm", sync_to_thread=True)
    def confirm_form(self, db_session: DbSession, runtime: RuntimeDep,
                     token: FromQuery[str] = "") -> Template:
        """A button that confirms (opening the link alone changes nothing)."""
        try:
            recovery.peek(db_session, clock=runtime.clock, token=token,
                          purpose=TokenPurpose.CONFIRM_EMAIL)
        except LinkNotValid:
            return _page("link_invalid.html", 400, purpose="confirm")
        return _page("confirm.html", token=token, confirmed=False)

    @post("/account/confirm", status_code=200, sync_to_thread=True)
    def confirm(self, data: Form, db_session: DbSession, runtime: RuntimeDep) -> Template:
        """Spend the link and mark the address confirmed."""
        try:
            recovery.confirm_email(db_session, clock=runtime.clock,
                                   pseudonym_key=runtime.keyring.pseudonym_key,
                                   token=form_text(data, "token"))
        except LinkNotValid:
            return _page("link_invalid.html", 400, purpose="confirm")
        return _page("confirm.html", token="", confirmed=True)

    @post("/account/confirm/resend", status_code=303, sync_to_thread=True,
          dependencies={"customer": Provide(provide_customer, sync_to_thread=True)})
    def resend(self, customer: Customer, db_session: DbSession,
               runtime: RuntimeDep) -> Response[Any]:
        """A fresh confirmation link to the profile's address (the older one stops working)."""
        if runtime.account_mailer is None or customer.email_confirmed_at is not None:
            return Redirect(path="/profile", status_code=303)
        _count_mail(runtime, db_session, mailbox=customer.email_index)
        email = str(vault_service.read_profile(
            db_session, cipher=runtime.cipher, account_id=customer.id).standard.get("email", ""))
        response = Redirect(path="/profile?confirmation_sent=1", status_code=303)
        response.background = confirmation_task(db_session, runtime, customer, email)
        return response
