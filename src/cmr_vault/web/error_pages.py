"""The friendly page a person sees when something goes wrong.

It keeps the signed-in menu (the account is the one the request resolved, or looked up from the
session cookie), says what happened in the person's language and, after a form, that nothing
was saved. A form whose CSRF token had expired is shown again with what was typed, for the
forms that declare which typed values may come back (never a password): see `KeptForm`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import MediaType, Request, Response
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.deps import SIGNED_IN_STATE_KEY, SignedIn, session_cookie_name
from cmr_vault.crypto.kek import KeyUnavailableError
from cmr_vault.db.session import read_aside
from cmr_vault.i18n import current_language, gettext, use_language
from cmr_vault.i18n.catalogs import translated_texts
from cmr_vault.i18n.web import SCOPE_KEY, choose_language
from cmr_vault.web.csrf import CSRF_FIELD, FormExpired, bound_token, csrf_cookie_name

log = logging.getLogger("cmr_vault.web")

#: The route `opt` key under which a form handler declares its `KeptForm`.
KEEP_TYPED = "cmr_vault.keep_typed"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class KeptForm:
    """How to show a form again after its CSRF token expired, with what was typed.

    `fields` lists the typed values that may come back (never a password or a secret);
    `context` turns them into the template's context (lists, labels, `values`). Declare it on
    the POST handler: `@post("/profile", opt={KEEP_TYPED: KeptForm(...)})`. Forms that act at
    once (consent, revoke, erase) declare nothing: a forged post must not come back as a
    ready-filled form a single click away from being sent.
    """

    template: str
    fields: tuple[str, ...]
    context: Callable[[dict[str, str]], dict[str, Any]] = field(
        default=lambda typed: {"values": typed, "problems": {}}
    )


def _heading(status: int) -> tuple[str, str]:
    """What happened, in a sentence or two a customer understands."""
    if status == 404:
        return gettext("We could not find this page"), gettext(
            "The address may be mistyped, or what it pointed to is gone or is not yours to see."
        )
    if status in (401, 403):
        return gettext("You cannot open this page"), gettext(
            "It belongs to another kind of account, or your session has ended."
        )
    if status == 405:
        return gettext("This page cannot do that"), gettext(
            "The page exists, but not for what your browser asked of it."
        )
    if status == 409:
        return gettext("This clashes with what is already there"), gettext(
            "Someone or something changed it in the meantime. Reload the page and try again."
        )
    if status == 413:
        return gettext("What you sent is too large"), gettext(
            "Send less at once, or leave out large attachments."
        )
    if status == 429:
        return gettext("Too many attempts"), gettext("Please wait a little before you try again.")
    if status == 503:
        return gettext("The vault is briefly unavailable"), gettext(
            "Please try again in a few seconds."
        )
    if status >= 500:
        return gettext("Something went wrong on our side"), gettext(
            "It is not your fault. Please try again in a moment."
        )
    return gettext("Something in the request is not right"), gettext(
        "Check what you entered and send it again."
    )


def in_language(text: str) -> str | None:
    """`text` in the reader's language, or None when it exists only in English and the reader
    reads another language (a page never mixes two languages; the heading says enough)."""
    translated = gettext(text)
    if translated != text or current_language() == "en":
        return translated
    return text if text in translated_texts(current_language()) else None


def _visitor(request: Request[Any, Any, Any], exc: Exception) -> SignedIn | None:
    """The signed-in account, so the page keeps its menu (none when the database is the
    problem: an error page never waits on what just failed)."""
    resolved = request.state.get(SIGNED_IN_STATE_KEY)
    if resolved is not None:
        return resolved
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None or isinstance(exc, SQLAlchemyError | KeyUnavailableError):
        return None
    token = request.cookies.get(session_cookie_name(runtime))
    if not token:
        return None
    try:
        with read_aside(runtime.engine) as session:
            account = accounts_service.resolve_session(session, clock=runtime.clock, token=token)
            return SignedIn(account.id, account.role) if account is not None else None
    except SQLAlchemyError as error:
        log.warning("error page without the account: %s", type(error).__name__)
        return None


def _csrf(request: Request[Any, Any, Any]) -> tuple[str, str | None]:
    """The token for the page's forms (sign-out, a form shown again), and a new cookie value
    when the request carried no token bound to its session."""
    state = ScopeState.from_scope(request.scope)
    token = state.csrf_token if isinstance(state.csrf_token, str) else None
    if token:
        return token, None
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return "", None
    session = request.cookies.get(session_cookie_name(runtime), "")
    fresh = bound_token(runtime.keyring.csrf_secret.hex(), session)
    return fresh, fresh


def _typed(request: Request[Any, Any, Any], kept: KeptForm) -> dict[str, str]:
    form = ScopeState.from_scope(request.scope).form
    if not isinstance(form, dict):
        return {}
    typed = {}
    for name in kept.fields:
        value = form.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        if isinstance(value, str):
            typed[name] = value
    return typed


def error_page(
    request: Request[Any, Any, Any],
    exc: Exception,
    *,
    status: int,
    detail: str,
    problems: Any,
    headers: dict[str, str],
) -> Response[Any]:
    """Render the friendly page for `exc` in the reader's language."""
    with use_language(request.scope.get(SCOPE_KEY) or choose_language(request)):
        account = _visitor(request, exc)
        token, new_cookie = _csrf(request)
        csrf_input = (
            Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)
            if token
            else ""
        )
        common = {"request": request, "account": account, "csrf_input": csrf_input}
        route = request.scope.get("route_handler")
        kept = route.opt.get(KEEP_TYPED) if route is not None else None
        engine = request.app.template_engine
        if isinstance(exc, FormExpired) and isinstance(kept, KeptForm):
            typed = _typed(request, kept)
            html = engine.get_template(kept.template).render(
                **kept.context(typed), **common, form_expired=True
            )
        else:
            heading, explanation = _heading(status)
            if isinstance(exc, FormExpired):
                heading = gettext("This form had expired")
                explanation = gettext(
                    "For your safety the vault accepts a form only from the page it gave you, "
                    "in the same session: this one was open too long, or you signed in or out "
                    "in another tab. Go back, reload the page and send it again."
                )
            shown_problems = {}
            if isinstance(problems, dict):
                shown_problems = {
                    name: worded
                    for name, message in problems.items()
                    if (worded := in_language(str(message)))
                }
            html = engine.get_template("errors/error.html").render(
                **common,
                status=status,
                title=heading,
                explanation=explanation,
                detail=in_language(detail) if detail else None,
                problems=shown_problems,
                nothing_saved=request.method not in SAFE_METHODS,
            )
    response: Response[Any] = Response(
        content=html, status_code=status, media_type=MediaType.HTML, headers=headers
    )
    if new_cookie:
        runtime = request.app.state.runtime
        secure = runtime.settings.secure_cookies
        response.set_cookie(
            key=csrf_cookie_name(secure=secure),
            value=new_cookie,
            path="/",
            httponly=True,
            secure=secure,
            samesite="lax",
        )
    return response
