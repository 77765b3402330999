"""The one place where errors become HTTP: RFC 9457 problems for machines, pages for people."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_303_SEE_OTHER

from cmr_vault.accounts.exceptions import SignInRequired
from cmr_vault.crypto.kek import KeyUnavailableError
from cmr_vault.errors import DomainError, ErrorKind

log = logging.getLogger("cmr_vault.web")

STATUS_BY_KIND = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.THROTTLED: 429,
    ErrorKind.UNAVAILABLE: 503,
}
PROBLEM_JSON = "application/problem+json"
MACHINE_PREFIXES = (
    "/api/",
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/.well-known/",
    "/health",
    "/schema",
)


def wants_problem_document(request: Request[Any, Any, Any]) -> bool:
    """API paths, and any client that does not ask for HTML, get problem documents."""
    if request.url.path.startswith(MACHINE_PREFIXES):
        return True
    return "text/html" not in request.headers.get("accept", "")


def _problem(
    status: int,
    *,
    slug: str,
    title: str,
    detail: str,
    instance: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:cmr-vault:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra or {})
    return body


def _describe(exc: Exception) -> tuple[int, str, str, str, dict[str, Any], dict[str, str]]:
    """(status, slug, title, detail, extra members, headers) for any exception."""
    if isinstance(exc, DomainError):
        status = STATUS_BY_KIND[exc.kind]
        extra: dict[str, Any] = {"errors": exc.problems} if exc.problems else {}
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        headers.update(exc.headers)
        return status, exc.slug, exc.title, exc.detail, extra, headers
    if isinstance(exc, ValidationException):
        extra = {"errors": exc.extra} if exc.extra else {}
        return 400, "invalid-request", "The request is not valid", str(exc.detail), extra, {}
    if isinstance(exc, HTTPException):
        phrase = HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        return exc.status_code, "", phrase, str(exc.detail), {}, headers
    if isinstance(exc, KeyUnavailableError):
        log.error("key provider unavailable: %s", type(exc).__name__)
        return (
            503,
            "keys-unavailable",
            "Temporarily unavailable",
            ("The vault cannot reach its keys right now; nothing was changed. Try again later."),
            {},
            {"Retry-After": "30"},
        )
    log.exception("unhandled error on %s", type(exc).__name__)
    return 500, "internal-error", "Internal error", "Something went wrong on our side.", {}, {}


def exception_to_http_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Render any exception as a problem document or a friendly page."""
    if isinstance(exc, SignInRequired) and not wants_problem_document(request):
        target = quote(request.url.path, safe="/")
        return Response(
            content=None,
            status_code=HTTP_303_SEE_OTHER,
            headers={"Location": f"/signin?next={target}"},
        )
    status, slug, title, detail, extra, headers = _describe(exc)
    if wants_problem_document(request):
        body = _problem(
            status, slug=slug, title=title, detail=detail, instance=request.url.path, extra=extra
        )
        return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    html = request.app.template_engine.get_template("errors/error.html").render(
        title=title,
        detail=detail,
        status=status,
        problems=extra.get("errors") or {},
        request=request,
        csrf_input="",
    )
    return Response(content=html, status_code=status, media_type=MediaType.HTML, headers=headers)
