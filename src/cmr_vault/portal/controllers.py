"""Customer pages: sign-up, sign-in, profile, password, export and erasure.

Handlers parse the form, call a service and pick a page; a POST that succeeds redirects (303) so
a reload never repeats it. A form with errors is shown again with the messages, status 400.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.controllers import confirmation_task
from cmr_vault.accounts.deps import (
    Customer,
    MaybeAccount,
    provide_customer,
    provide_optional_account,
    session_cookie_name,
    session_token,
)
from cmr_vault.accounts.exceptions import WrongPassword
from cmr_vault.accounts.models import Account, Role
from cmr_vault.consent import receipts
from cmr_vault.consent import service as consent_service
from cmr_vault.db.session import read_aside
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import DomainError, NotFound, TooManyRequests
from cmr_vault.i18n import gettext as _
from cmr_vault.i18n import ngettext
from cmr_vault.i18n.web import language_from_profile, remember_language
from cmr_vault.intents import service as intents_service
from cmr_vault.marketing import service as marketing_service
from cmr_vault.oauth import service as oauth_service
from cmr_vault.portal import service as portal_service
from cmr_vault.portal.dates import FORMATTERS
from cmr_vault.portal.forms import form_text, profile_changes, profile_form_values
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from cmr_vault.vault.fields import IDENTITY_KINDS, STANDARD_FIELDS, common_time_zones
from cmr_vault.web.bodies import prepare_request
from cmr_vault.web.error_pages import KEEP_TYPED, KeptForm

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
ERASE_CONFIRMATION = "erase my data"
#: The profile form's fields: all may come back in the form after its token expired.
PROFILE_FORM_FIELDS = (*(spec.name for spec in STANDARD_FIELDS), "interests", "identities",
                       "custom")


def _erase_phrase() -> str:
    """The words that confirm erasure, in the reader's language (English always works too)."""
    return _("erase my data")


def _page(name: str, status: int = 200, **context: Any) -> Template:
    return Template(template_name=f"portal/{name}", context={**FORMATTERS, **context},
                    status_code=status)


def _safe_next(target: str) -> str:
    """Only same-site paths: never an open redirect."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/profile"


def _signed_in_response(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    runtime: RuntimeDep,
    account: Account,
    target: str,
) -> Response[Any]:
    token = accounts_service.start_session(
        db_session,
        clock=runtime.clock,
        account=account,
        max_age=runtime.settings.session_max_age_seconds,
        replacing=session_token(request, runtime),
    )
    response = Redirect(path=_safe_next(target), status_code=303)
    response.set_cookie(
        key=session_cookie_name(runtime),
        value=token,
        path="/",
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="lax",
        max_age=runtime.settings.session_max_age_seconds,
    )
    return response


def _speak_profile_language(
    response: Response[Any], db_session: DbSession, runtime: Runtime, account: Account
) -> None:
    """The pages follow the profile's language, when it has one the vault speaks: kept in
    the language cookie (set at sign-in and on saving), so no page decrypts the profile for it.
    """
    profile = vault_service.read_profile(db_session, cipher=runtime.cipher, account_id=account.id)
    language = language_from_profile(profile.standard.get("locale"))
    if language:
        remember_language(response, language, secure=runtime.settings.secure_cookies)


_PASSWORD_HASH = "cmr_vault.sign_up_password_hash"  # noqa: S105 (a state key, not a secret)


def _client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _hash_unless_refused(runtime: Runtime, address: str, password: str) -> str | None:
    with read_aside(runtime.engine) as session:
        if runtime.rate_limits.signups.would_refuse(session, address):
            return None
    try:
        return accounts_service.hash_password(password)
    except DomainError:
        return None  # the handler explains what is wrong with it


async def hash_before_the_database(request: Request[Any, Any, Any]) -> None:
    """Before sign-up: hash the password (argon2id, ~50 ms) while the request holds no turn at
    the SQLite gate, so nobody's reads queue behind it; not for a form that will be refused
    anyway (passwords that differ, an address over its sign-up limit)."""
    await prepare_request(request)
    form = (await request.form()).dict()
    password = form_text(form, "password")
    if password and password == form_text(form, "password_confirm"):
        runtime: Runtime = request.app.state.runtime
        request.state[_PASSWORD_HASH] = await anyio.to_thread.run_sync(
            _hash_unless_refused, runtime, _client_address(request), password)


class AccountPages(Controller):
    """Signing up, in and out, and changing the password."""

    include_in_schema = False  # pages for people, not the machine API

    @get(
        "/",
        sync_to_thread=True,
        dependencies={"account": Provide(provide_optional_account, sync_to_thread=True)},
    )
    def home(self, account: MaybeAccount) -> Template:
        """The landing page: what the vault is, and the way in."""
        return _page("home.html", account=account)

    @get("/signup", sync_to_thread=True)
    def signup_form(
        self, db_session: DbSession,
        next_: Annotated[str, QueryParameter(name="next")] = "/profile",
    ) -> Template:
        """The sign-up form; from a company's authorization link it says who is asking, and
        the new vault goes straight back to that consent screen."""
        target = _safe_next(next_)
        return _page("signup.html", values={}, problems={}, next=target,
                     company=oauth_service.client_asking(db_session, target))

    @post("/signup", status_code=200, sync_to_thread=True,
          before_request=hash_before_the_database,
          opt={KEEP_TYPED: KeptForm("portal/signup.html", ("email", "next"), lambda typed: {
              "values": typed, "problems": {}, "company": None,
              "next": _safe_next(typed.get("next") or "/profile")})})
    def signup(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """Create the account and sign in at once (limited per address: each sign-up costs a
        password hash and a data key)."""
        email, password = form_text(data, "email"), form_text(data, "password")
        target = _safe_next(form_text(data, "next") or "/profile")
        company = oauth_service.client_asking(db_session, target)
        try:
            runtime.rate_limits.signups.hit(db_session, _client_address(request), "sign-ups")
        except TooManyRequests as exc:
            response = _page("signup.html", 429, values={"email": email},
                             problems={"email": exc.detail}, next=target, company=company)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if password != form_text(data, "password_confirm"):
            return _page(
                "signup.html",
                400,
                values={"email": email},
                problems={"password_confirm": _("The two passwords differ.")},
                next=target,
                company=company,
            )
        keyring = runtime.keyring
        try:
            account = vault_service.sign_up_customer(
                db_session,
                cipher=runtime.cipher,
                data_keys=runtime.data_keys,
                clock=runtime.clock,
                index_key=keyring.index_key,
                pseudonym_key=keyring.pseudonym_key,
                email=email,
                password=password,
                password_hash=request.state.get(_PASSWORD_HASH),
            )
        except DomainError as exc:
            return _page(
                "signup.html",
                400,
                values={"email": email},
                problems=exc.problems or {"email": exc.detail},
                next=target,
                company=company,
            )
        response = _signed_in_response(request, db_session, runtime, account, target)
        response.background = confirmation_task(db_session, runtime, account, email)
        return response

    @get("/signin", sync_to_thread=True)
    def signin_form(
        self, db_session: DbSession,
        next_: Annotated[str, QueryParameter(name="next")] = "/profile",
    ) -> Template:
        """The sign-in form; from a company's authorization link it says who is asking."""
        target = _safe_next(next_)
        return _page("signin.html", next=target, error=None,
                     company=oauth_service.client_asking(db_session, target))

    @post("/signin", status_code=200, sync_to_thread=True,
          opt={KEEP_TYPED: KeptForm("portal/signin.html", ("email", "next"), lambda typed: {
              "values": typed, "error": None, "company": None,
              "next": _safe_next(typed.get("next") or "/profile")})})
    def signin(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """Check the password (throttled) and start a fresh session."""
        keyring = runtime.keyring
        target = _safe_next(form_text(data, "next") or "/profile")
        result = accounts_service.authenticate(
            db_session,
            index_key=keyring.index_key,
            pseudonym_key=keyring.pseudonym_key,
            clock=runtime.clock,
            email=form_text(data, "email"),
            password=form_text(data, "password"),
            client=_client_address(request),
            limits=accounts_service.SignInLimits(
                per_address_and_account=runtime.settings.sign_in_max_failures,
                per_account=runtime.settings.sign_in_account_max_failures,
                per_address=runtime.settings.sign_in_address_max_failures,
                window_seconds=runtime.settings.sign_in_window_seconds,
            ),
        )
        if result.outcome is accounts_service.SignInOutcome.THROTTLED:
            minutes = max(1, result.retry_after // 60)
            response = _page(
                "signin.html",
                429,
                next=target,
                error=ngettext(
                    "Too many attempts. Try again in about %(num)d minute.",
                    "Too many attempts. Try again in about %(num)d minutes.", minutes,
                ) % {"num": minutes},
            )
            response.headers["Retry-After"] = str(result.retry_after)
            return response
        if result.account is None:
            return _page(
                "signin.html",
                401,
                next=target,
                error=_("That e-mail and password do not match an account."),
            )
        if result.account.role == Role.AUDITOR and target == "/profile":
            target = "/auditor"
        elif target == "/profile" and consent_service.pending_notices(
                db_session, account_id=result.account.id, now=runtime.clock.now()):
            target = "/connections/notices"
        response = _signed_in_response(request, db_session, runtime, result.account, target)
        if result.account.role == Role.CUSTOMER:
            _speak_profile_language(response, db_session, runtime, result.account)
        return response

    @post("/signout", status_code=200, sync_to_thread=True)
    def signout(
        self, request: Request[Any, Any, Any], data: Form, db_session: DbSession,
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """End the session on the server and forget the cookie.

        With `next` (the consent screen's "sign in with another account") the sign-in page
        follows, and after it the same page again.
        """
        token = session_token(request, runtime)
        if token:
            accounts_service.end_session(db_session, token=token)
        target = form_text(data, "next")
        response = Redirect(
            path=f"/signin?next={quote(_safe_next(target), safe='')}" if target else "/",
            status_code=303,
        )
        response.delete_cookie(session_cookie_name(runtime), path="/")
        return response

    @get(
        "/account/password",
        sync_to_thread=True,
        dependencies={"customer": Provide(provide_customer, sync_to_thread=True)},
    )
    def password_form(self, customer: Customer) -> Template:
        """The password change form."""
        return _page("password.html", account=customer, problems={}, done=False)

    @post(
        "/account/password",
        status_code=200,
        sync_to_thread=True,
        dependencies={"customer": Provide(provide_customer, sync_to_thread=True)},
    )
    def change_password(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        db_session: DbSession,
        runtime: RuntimeDep,
        customer: Customer,
    ) -> Template:
        """Change the password; every other session of this account ends."""
        new = form_text(data, "new_password")
        if new != form_text(data, "new_password_confirm"):
            return _page(
                "password.html",
                400,
                account=customer,
                done=False,
                problems={"new_password_confirm": _("The two passwords differ.")},
            )
        try:
            accounts_service.change_password(
                db_session,
                clock=runtime.clock,
                pseudonym_key=runtime.keyring.pseudonym_key,
                account=customer,
                current=form_text(data, "current_password"),
                new=new,
                keep_token=session_token(request, runtime) or "",
            )
        except DomainError as exc:
            return _page(
                "password.html",
                400,
                account=customer,
                done=False,
                problems=exc.problems or {"current_password": exc.detail},
            )
        return _page("password.html", account=customer, problems={}, done=True)


class ProfilePages(Controller):
    """Viewing and editing the profile, exporting it, erasing it."""

    include_in_schema = False  # pages for people, not the machine API

    dependencies = {"customer": Provide(provide_customer, sync_to_thread=True)}

    def _profile_page(
        self,
        customer: Customer,
        values: dict[str, str],
        problems: dict[str, str],
        status: int = 200,
        saved: FromQuery[bool] = False,
    ) -> Template:
        return _page(
            "profile.html",
            status,
            account=customer,
            values=values,
            problems=problems,
            fields=STANDARD_FIELDS,
            time_zones=common_time_zones(),
            identity_kinds=IDENTITY_KINDS,
            saved=saved,
        )

    @get("/profile", sync_to_thread=True)
    def profile(
        self,
        customer: Customer,
        db_session: DbSession,
        runtime: RuntimeDep,
        saved: FromQuery[bool] = False,
    ) -> Template:
        """The profile, opened for its owner, as an editable form."""
        profile = vault_service.read_profile(
            db_session, cipher=runtime.cipher, account_id=customer.id
        )
        return self._profile_page(customer, profile_form_values(profile), {}, saved=saved)

    @post("/profile", status_code=200, sync_to_thread=True,
          opt={KEEP_TYPED: KeptForm("portal/profile.html", PROFILE_FORM_FIELDS, lambda typed: {
              "values": typed, "problems": {}, "fields": STANDARD_FIELDS, "saved": False,
              "time_zones": common_time_zones(), "identity_kinds": IDENTITY_KINDS})})
    def save_profile(
        self, data: Form, customer: Customer, db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        """Validate everything, then save; on any error nothing is saved."""
        current = vault_service.read_profile(
            db_session, cipher=runtime.cipher, account_id=customer.id
        )
        keyring = runtime.keyring
        try:
            vault_service.update_profile(
                db_session,
                cipher=runtime.cipher,
                clock=runtime.clock,
                index_key=keyring.index_key,
                pseudonym_key=keyring.pseudonym_key,
                account=customer,
                changes=profile_changes(data, current),
            )
        except DomainError as exc:
            submitted = {key: form_text(data, key) for key in data}
            return self._profile_page(customer, submitted, exc.problems or {"": exc.detail}, 400)
        response = Redirect(path="/profile?saved=1", status_code=303)
        _speak_profile_language(response, db_session, runtime, customer)
        return response

    @get("/export", sync_to_thread=False)
    def export_form(self, customer: Customer) -> Template:
        """Ask for the password before handing out everything."""
        return _page("export.html", account=customer, error=None)

    @post("/export", status_code=200, sync_to_thread=True)
    def export(
        self, data: Form, customer: Customer, db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        """Everything the vault holds about the customer, as one JSON download."""
        try:
            accounts_service.require_password(customer, form_text(data, "password"))
        except WrongPassword as exc:
            return _page("export.html", 401, account=customer, error=exc.detail)
        document = vault_service.export_document(
            db_session,
            cipher=runtime.cipher,
            clock=runtime.clock,
            pseudonym_key=runtime.keyring.pseudonym_key,
            account=customer,
        )
        document["connections"] = consent_service.export_grants(
            db_session, account_id=customer.id, now=runtime.clock.now())
        document["receipts"] = [
            {"id": r.id, "issued_at": r.issued_at.isoformat(), "event": r.event,
             "company": r.client_id, "jws": r.jws, "claims": receipts.claims_in(r)}
            for r in receipts.receipts_of(db_session, customer.id)]
        document["reminders"] = [
            {"at": r.created_at.isoformat(), "company": r.client_id, "kind": r.kind,
             "lapses_at": r.lapses_at.isoformat()}
            for r in consent_service.reminders_of(db_session, customer.id, limit=10_000)]
        document["marketing"] = marketing_service.export_marketing(
            db_session, cipher=runtime.cipher, account_id=customer.id)
        document["intents"] = intents_service.export_intents(
            db_session, cipher=runtime.cipher, account_id=customer.id, now=runtime.clock.now())
        return Response(
            content=json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="cmr-vault-export.json"'},
        )

    @get("/erase", sync_to_thread=False)
    def erase_form(self, customer: Customer) -> Template:
        """Explain what erasure means and ask for confirmation."""
        return _page("erase.html", account=customer, problems={}, phrase=_erase_phrase())

    @post("/erase", status_code=200, sync_to_thread=True)
    def erase(
        self, data: Form, customer: Customer, db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        """Crypto-shred the customer's data and remove the account."""
        problems: dict[str, str] = {}
        phrase = _erase_phrase()
        if form_text(data, "confirm").strip().lower() not in {phrase, ERASE_CONFIRMATION}:
            problems["confirm"] = _("Type “%(phrase)s” to confirm.") % {"phrase": phrase}
        if not accounts_service.password_matches(customer, form_text(data, "password")):
            problems["password"] = _("The password is not correct.")
        if problems:
            return _page("erase.html", 400, account=customer, problems=problems, phrase=phrase)
        vault_service.erase(db_session, runtime.consent_context(), data_keys=runtime.data_keys,
                            account=customer)
        response = _page("erased.html", account=None)
        response.delete_cookie(session_cookie_name(runtime), path="/")
        return response



class ActivityPage(Controller):
    """"Who accessed my data": the customer's own view of the audit log, with proofs."""

    include_in_schema = False  # pages for people, not the machine API

    dependencies = {"customer": Provide(provide_customer, sync_to_thread=True)}

    @get("/activity", sync_to_thread=True)
    def activity(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep) -> Template:
        """Every entry about the customer in a sentence, each checked against the latest
        signed head."""
        return _page("activity.html", account=customer,
                     activity=portal_service.activity_of(db_session, runtime,
                                                         account_id=customer.id))


class ConnectionsPage(Controller):
    """Every company with access: what, why, since when, until when; withdraw one permission
    or all of them, each after a confirmation step."""

    include_in_schema = False  # pages for people, not the machine API

    path = "/connections"
    dependencies = {"customer": Provide(provide_customer, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def connections(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep,
                    revoked: FromQuery[bool] = False,
                    renewed: FromQuery[bool] = False) -> Template:
        """The connections in force, then the ended ones as a history to open."""
        now = runtime.clock.now()
        current, ended, zone = portal_service.connection_cards(
            db_session, cipher=runtime.cipher, pseudonym_key=runtime.keyring.pseudonym_key,
            account_id=customer.id, now=now)
        return _page("connections.html", account=customer, revoked=revoked, renewed=renewed,
                     cards=current, ended=ended, zone=zone,
                     notices=consent_service.pending_notices(
                         db_session, account_id=customer.id, now=now))

    @get("/{grant_id:str}/confirm", sync_to_thread=True)
    def confirm_revoke(self, grant_id: FromPath[str], customer: Customer,
                       db_session: DbSession, runtime: RuntimeDep,
                       permission_: Annotated[str, QueryParameter(name="scope")] = ""
                       ) -> Template:
        """The step before withdrawing: what exactly stops, for whom, and that nothing has
        happened yet. The button on it sends the withdrawal."""
        card = portal_service.connection_card(
            db_session, cipher=runtime.cipher, pseudonym_key=runtime.keyring.pseudonym_key,
            account_id=customer.id, grant_id=grant_id, now=runtime.clock.now())
        permission = next((p for p in card.permissions if p.scope == permission_), None)
        if permission_ and permission is None:
            raise NotFound("That connection has no such permission.")
        return _page("confirm_revoke.html", account=customer, card=card, permission=permission)

    @post("/{grant_id:str}/revoke", status_code=303, sync_to_thread=True)
    def revoke(self, grant_id: FromPath[str], data: Form, customer: Customer,
               db_session: DbSession, runtime: RuntimeDep) -> Redirect:
        """Withdraw one permission (when `scope` is sent) or the whole connection."""
        scope = form_text(data, "scope") or None
        consent_service.revoke(db_session, runtime.consent_context(), account_id=customer.id,
                               grant_id=grant_id, scope=scope)
        return Redirect(path="/connections?revoked=true", status_code=303)

    @post("/{grant_id:str}/renew", status_code=303, sync_to_thread=True)
    def renew(self, grant_id: FromPath[str], customer: Customer, db_session: DbSession,
              runtime: RuntimeDep) -> Redirect:
        """The same permissions for another term, in one step."""
        consent_service.renew(db_session, runtime.consent_context(), account_id=customer.id,
                              grant_id=grant_id)
        return Redirect(path=f"/connections?renewed=true#grant-{grant_id}", status_code=303)

    @get("/notices", sync_to_thread=True)
    def notices(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep) -> Template:
        """Companies whose newer notice asks for more: agree, or keep the grant as it is."""
        changes = consent_service.pending_notices(db_session, account_id=customer.id,
                                                  now=runtime.clock.now())
        return _page("notices.html", account=customer, changes=[
            (change, portal_service.added_permissions(change.added)) for change in changes])

    @post("/{grant_id:str}/notice", status_code=303, sync_to_thread=True)
    def answer_notice(self, grant_id: FromPath[str], data: Form, customer: Customer,
                      db_session: DbSession, runtime: RuntimeDep) -> Redirect:
        """`answer=agree` widens the grant to the new notice; anything else keeps it."""
        consent_service.answer_notice(db_session, runtime.consent_context(),
                                      account_id=customer.id, grant_id=grant_id,
                                      agree=form_text(data, "answer") == "agree")
        return Redirect(path="/connections/notices", status_code=303)


class ReceiptsPage(Controller):
    """The customer's consent receipts: each a record to read, and a signed file to keep."""

    include_in_schema = False  # pages for people, not the machine API

    path = "/receipts"
    dependencies = {"customer": Provide(provide_customer, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def receipts(self, customer: Customer, db_session: DbSession,
                 runtime: RuntimeDep) -> Template:
        """Every receipt, newest first, each as one sentence."""
        records, zone = portal_service.receipts_of(db_session, cipher=runtime.cipher,
                                                   account_id=customer.id)
        return _page("receipts.html", account=customer, records=records, zone=zone)

    @get("/{receipt_id:str}", sync_to_thread=True)
    def receipt(self, receipt_id: FromPath[str], customer: Customer, db_session: DbSession,
                runtime: RuntimeDep) -> Response[Any]:
        """`<id>`: the receipt as a person's record. `<id>.json`: the signed file with its log
        proof, verifiable offline with the vault's public key."""
        if not receipt_id.endswith(".json"):
            return _page("receipt.html", account=customer, record=portal_service.receipt_of(
                db_session, cipher=runtime.cipher, account_id=customer.id,
                receipt_id=receipt_id))
        document = receipts.receipt_file(
            db_session, runtime.receipt_signer(), tree=runtime.audit_tree,
            account_id=customer.id, receipt_id=receipt_id.removesuffix(".json"))
        name = f"consent-receipt-{document['claims']['consentReceiptID']}.json"
        return Response(
            content=json.dumps(document, indent=2).encode(), media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'})
