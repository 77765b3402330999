"""The one place where errors become HTTP: RFC 9457 problems for machines, pages for people."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from cmr_vault.accounts.exceptions import SignInRequired
from cmr_vault.crypto.kek import KeyUnavailableError
from cmr_vault.errors import DomainError, ErrorKind, ValidationFailed
from cmr_vault.patterns import meaning_of
from cmr_vault.web.error_pages import error_page

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
    "/oauth/userinfo",
    "/.well-known/",
    "/health",
    "/metrics",
    "/audit/",
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
    if isinstance(exc, ExceptionGroup):
        # Litestar groups the errors of dependencies' cleanup (a rollback on a lost
        # connection): the client hears what the first of them means.
        return _describe(exc.exceptions[0])
    if isinstance(exc, DomainError):
        status = STATUS_BY_KIND[exc.kind]
        extra: dict[str, Any] = {"errors": exc.problems} if exc.problems else {}
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        headers.update(exc.headers)
        return status, exc.slug, exc.title, exc.detail, extra, headers
    if isinstance(exc, ValidationException):
        extra = {"errors": _in_words(exc.extra)} if exc.extra else {}
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
    if isinstance(exc, OperationalError | PoolTimeoutError):
        # Only the driver's error class: SQLAlchemy's message quotes statements and parameters.
        log.error("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
        return (
            503,
            "database-unavailable",
            "Temporarily unavailable",
            "The vault cannot reach its database right now. Try again in a few seconds; a push "
            "sent again with the same idempotency key is stored at most once.",
            {},
            {"Retry-After": "5"},
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
    return error_page(request, exc, status=status, detail=detail,
                      problems=extra.get("errors") or {}, headers=headers)


@dataclass
class Problem:
    """An RFC 9457 problem document as the API sends it."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: dict[str, str] | list[dict[str, str]] | None = None


_PROBLEM_STATUSES = {
    400: "The request is not valid (the problem names each field)",
    401: "No credentials, or credentials that are not valid",
    403: "Authenticated, but not allowed (a refused decision lists its rules)",
    404: "Not found, or not the caller's to see",
    405: "The method is not allowed here",
    409: "Conflicts with what exists",
    413: "The body is too large",
    429: "A limit was reached; Retry-After says when to try again",
    503: "The service cannot answer right now; try again",
}
MACHINE_PATHS = ("/api/", "/oauth/token", "/oauth/revoke", "/oauth/introspect")


_PATTERN_MISMATCH = re.compile(r"String should match pattern '(.*)'", re.S)


def _in_words(errors: Any) -> Any:
    """Say what a pattern asks for instead of quoting the regular expression."""
    if not isinstance(errors, list):
        return errors
    worded = []
    for error in errors:
        found = (_PATTERN_MISMATCH.fullmatch(error.get("message", ""))
                 if isinstance(error, dict) else None)
        meaning = meaning_of(found.group(1)) if found else None
        worded.append({**error, "message": meaning} if meaning else error)
    return worded


def document_problems(app: Litestar) -> None:
    """Declare the problem responses every machine endpoint may give in the OpenAPI document,
    so clients (and schemathesis) know a 4xx comes as application/problem+json."""
    for route in app.routes:
        if not route.path.startswith(MACHINE_PATHS):
            continue
        for handler in getattr(route, "route_handlers", []):
            declared = dict(handler.responses or {})
            for status, description in _PROBLEM_STATUSES.items():
                declared.setdefault(status, ResponseSpec(
                    data_container=Problem, description=description, media_type=PROBLEM_JSON))
            handler.responses = declared


def _unstorable(value: str) -> bool:
    """NUL and lone surrogates cannot be stored (PostgreSQL refuses them) or sent as UTF-8."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


MAX_JSON_DEPTH = 32


def _depth(body: bytes) -> int:
    """How deeply a JSON text nests (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == 0x5C, byte != 0x22)
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def screen_api_input(request: Request[Any, Any, Any]) -> None:
    """Before any API handler: input no handler should have to survive gets a 400 problem,
    never a 500 from deep inside a decoder or a query. That is JSON nested deeper than any
    API document needs, a body that is not UTF-8, and text no database can store (NUL,
    unpaired surrogates) in the query or the body."""
    if not request.url.path.startswith("/api/"):
        return
    if any(_unstorable(v) for _, v in request.query_params.multi_items()):
        raise ValidationFailed("The query contains characters that cannot be stored.",
                               problems={"query": "no NUL or unpaired surrogates"})
    if request.method in ("POST", "PUT", "PATCH") and "json" in request.content_type[0]:
        body = await request.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("The body is not UTF-8 text.",
                                   problems={"body": f"invalid byte at {exc.start}"}) from exc
        brackets = body.count(b"[") + body.count(b"{")  # C-speed: most bodies skip the scan
        # The scan is Python, a second or so per 10 MB: off the event loop, so a caller's body
        # costs others nothing while it runs.
        if brackets > MAX_JSON_DEPTH and await anyio.to_thread.run_sync(
                _depth, body) > MAX_JSON_DEPTH:
            raise ValidationFailed(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.",
                                   problems={"body": "nested too deeply"})
        if b"\\u" not in body and b"\x00" not in body:
            return
        try:
            parsed = json.loads(body)
        except ValueError:
            return  # malformed JSON: the handler's own parsing names the problem
        if any(_unstorable(text) for text in _strings(parsed)):
            raise ValidationFailed("The body contains characters that cannot be stored.",
                                   problems={"body": "no NUL or unpaired surrogates"})
