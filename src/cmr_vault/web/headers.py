"""Strict security headers on every response.

No JavaScript and no third-party content anywhere, so the policy can be tight: everything from
our own origin, nothing inline, no framing (the consent screen must never sit in someone else's
frame: clickjacking), and no referrer leaking tokens or paths to other sites.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
BASE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=63072000; includeSubDomains"


def security_headers_middleware(*, hsts: bool) -> type:
    """A Litestar middleware class adding the headers (HSTS only when served over https)."""
    headers = {**BASE_HEADERS, **({"Strict-Transport-Security": HSTS} if hsts else {})}

    class SecurityHeaders:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    mutable = MutableScopeHeaders.from_message(message)
                    for name, value in headers.items():
                        mutable.setdefault(name, value)
                    if not scope["path"].startswith("/static/"):
                        # Pages and API answers carry personal data or tokens: never cache them.
                        mutable.setdefault("Cache-Control", "no-store")
                await send(message)

            await self.app(scope, receive, send_with_headers)

    return SecurityHeaders


class CompleteAllowHeader:
    """Answer OPTIONS with every method of the path (RFC 9110 §9.3.7).

    Surprising: when a controller declares several methods on one path, Litestar rebuilds the
    route but keeps the automatic OPTIONS handler of the first, which lists only that first
    method. The route's own method set is right, so the header is rewritten from it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.allow: dict[str, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "OPTIONS":
            await self.app(scope, receive, send)
            return
        allow = self._allow_for(scope)

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and allow:
                mutable = MutableScopeHeaders.from_message(message)
                if "allow" in mutable:
                    mutable["Allow"] = allow
            await send(message)

        await self.app(scope, receive, send_with_allow)

    def _allow_for(self, scope: Scope) -> str | None:
        if self.allow is None:
            self.allow = {
                route.path_format: ", ".join(sorted(route.methods))
                for route in scope["litestar_app"].routes
                if isinstance(route, HTTPRoute)
            }
        return self.allow.get(scope.get("path_template", ""))
