"""CSRF tokens bound to the browser's session.

Litestar's CSRF middleware is a double-submit cookie: any token it signed is accepted as long
as the form and the cookie carry the same one. Someone who can plant a cookie in the victim's
browser (a sibling subdomain, a network attacker on plain http) can therefore pair the victim's
session with a token pair of their own and submit the consent form as the victim. Here the
token is an HMAC over a nonce *and the session cookie*, so a pair minted for another session
(or for none) is refused; a page fetched after signing in or out gets a fresh token.
"""

from __future__ import annotations

import secrets
from hmac import compare_digest
from typing import Any

from litestar.config.csrf import CSRFConfig
from litestar.connection import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.csrf import CSRF_SECRET_BYTES, CSRFMiddleware, generate_csrf_hash
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

CSRF_FIELD = "_csrf_token"


class FormExpired(PermissionDeniedException):
    """A form came back without a token bound to this session: opened too long ago, or the
    person signed in or out in another tab since (or another site sent it). Nothing is done;
    the page says so, and shows a form again with what was typed where that is safe."""


def csrf_cookie_name(*, secure: bool) -> str:
    """`__Host-` binds the cookie to our origin over https; plain-http demo cannot use it."""
    return "__Host-cmr_csrf" if secure else "cmr_csrf"


def bound_token(secret: str, session: str, nonce: str | None = None) -> str:
    """A token for `session` (a fresh nonce unless one is given): nonce + HMAC(nonce, session).

    The session token is itself a secret; it enters only the HMAC, never the page.
    """
    nonce = nonce or secrets.token_hex(CSRF_SECRET_BYTES)
    return nonce + generate_csrf_hash(token=f"{nonce}\x00{session}", secret=secret)


class SessionBoundCSRF(CSRFMiddleware):
    """Double-submit cookie whose token is also bound to the session cookie's value."""

    def __init__(self, app: ASGIApp, config: CSRFConfig, session_cookie: str,
                 other_session_cookies: tuple[str, ...] = ()) -> None:
        super().__init__(app, config)
        # A company's dashboard session is a second session cookie; the token binds to both.
        self.session_cookies = (session_cookie, *other_session_cookies)

    def _is_bound(self, token: str, session: str) -> bool:
        nonce = token[: CSRF_SECRET_BYTES * 2]
        expected = bound_token(self.config.secret, session, nonce)
        return compare_digest(token.encode(), expected.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or should_bypass_middleware(
            scope=scope,
            scopes=self.scopes,
            exclude_opt_key=self.config.exclude_from_csrf_key,
            exclude_path_pattern=self.exclude,
        ):
            await self.app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(
            scope=scope, receive=receive
        )
        # Only the cookies present take part, so a customer's binding is the same as ever.
        session = "\x00".join(
            value for name in self.session_cookies if (value := request.cookies.get(name)))
        cookie = request.cookies.get(self.config.cookie_name)
        state = ScopeState.from_scope(scope)
        if request.method in self.config.safe_methods:
            live = cookie if cookie and self._is_bound(cookie, session) else None
            token = state.csrf_token = live or bound_token(self.config.secret, session)
            # A missing or stale cookie (signed in or out since) is replaced with this token.
            await self.app(scope, receive,
                           self.create_send_wrapper(send=send, token=token, csrf_cookie=live))
            return
        submitted = request.headers.get(self.config.header_name)
        content_type, _ = request.content_type
        if not submitted and content_type in {
            RequestEncodingType.URL_ENCODED,
            RequestEncodingType.MULTI_PART,
        }:
            submitted = (await request.form()).get(CSRF_FIELD)
        if (
            isinstance(submitted, str)
            and cookie is not None
            and compare_digest(submitted.encode(), cookie.encode())
            and self._is_bound(submitted, session)
        ):
            state.csrf_token = submitted
            await self.app(scope, receive, send)
            return
        raise FormExpired("CSRF token verification failed")
