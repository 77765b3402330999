"""The language of a web request: chosen, remembered, and handed to templates.

Order of choice: the language cookie (set by the language switch, and at sign-in or on saving
the profile from the profile's language), else the browser's `Accept-Language` (Babel's
negotiation), else English. The cookie holds only `de` or `en`.
"""

from __future__ import annotations

from typing import Any

from babel import Locale, UnknownLocaleError
from babel.core import negotiate_locale
from litestar import Response
from litestar.connection import ASGIConnection
from litestar.template import TemplateEngineProtocol
from litestar.types import ASGIApp, Receive, Scope, Send

from cmr_vault.i18n.language import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    current_language,
    gettext,
    ngettext,
    set_language,
)

LANGUAGE_COOKIES = ("__Host-cmr_lang", "cmr_lang")
LANGUAGE_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie (RFC 6265bis)
SCOPE_KEY = "cmr_vault.language"


def language_cookie_name(*, secure: bool) -> str:
    """`__Host-` binds the cookie to our origin over https; plain-http demo cannot use it."""
    return LANGUAGE_COOKIES[0] if secure else LANGUAGE_COOKIES[1]


def language_from_profile(locale: str | None) -> str | None:
    """The vault's language for a profile's language tag (`de-AT` → `de`), if it speaks it."""
    if not locale:
        return None
    try:
        language = Locale.parse(locale, sep="-").language
    except (ValueError, UnknownLocaleError):
        return None
    return language if language in LANGUAGES else None


def _accepted(header: str) -> list[str]:
    """The tags of an Accept-Language header, by quality (RFC 9110 §12.5.4)."""
    weighted = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def choose_language(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The language to answer in: cookie, else Accept-Language, else English."""
    for name in LANGUAGE_COOKIES:
        chosen = connection.cookies.get(name)
        if chosen in LANGUAGES:
            return chosen
    header = connection.headers.get("accept-language", "")
    negotiated = negotiate_locale(_accepted(header)[:20], list(LANGUAGES), sep="-")
    return negotiated or DEFAULT_LANGUAGE


def remember_language(response: Response[Any], language: str, *, secure: bool) -> None:
    """Keep `language` for the next visits of this browser."""
    response.set_cookie(
        key=language_cookie_name(secure=secure),
        value=language,
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
        max_age=LANGUAGE_COOKIE_MAX_AGE,
    )


class LanguageMiddleware:
    """Sets the request's language before anything renders or translates."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            language = choose_language(ASGIConnection(scope))
            scope[SCOPE_KEY] = language  # type: ignore[literal-required]
            set_language(language)
        await self.app(scope, receive, send)


def install_in_templates(engine: TemplateEngineProtocol[Any, Any]) -> None:
    """Jinja's i18n extension (`_()`, `{% trans %}`) bound to the request's language."""
    environment = engine.engine  # type: ignore[attr-defined]
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(gettext, ngettext, newstyle=True)
    environment.globals["current_language"] = current_language
    environment.globals["languages"] = LANGUAGES
