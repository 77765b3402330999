"""Request bodies are read whole, within a deadline, before anything else about the request.

A handler's dependencies are resolved side by side: a body read next to the database session
would wait for a slow client while the session already holds SQLite's per-loop gate, and one
client stalling its body would freeze every request that touches the database. Reading the
body first (Litestar caches it for the form and JSON parsers) means a client's pace only ever
costs its own connection, and the deadline bounds even that. The size is bounded by the
route's `request_max_body_size` (413); a route that takes more than the app-wide limit
authenticates its caller before reading (see `oauth.deps.company_before_body`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException

from cmr_vault.web.errors import screen_api_input

BODY_DEADLINE_SECONDS = 15.0
# Beyond the fixed deadline, a large body gets this much time per byte: slow links can upload,
# a client that trickles cannot keep its connection for ever.
BODY_MIN_BYTES_PER_SECOND = 64 * 1024


def _declared_length(request: Request[Any, Any, Any]) -> int | None:
    """The body's size as announced (0 for none), or None when it comes chunked."""
    if "transfer-encoding" in request.headers:
        return None
    length = request.headers.get("content-length", "0").strip()
    return int(length) if length.isascii() and length.isdigit() and len(length) < 19 else 0


def _deadline(request: Request[Any, Any, Any], declared: int | None) -> float:
    most = request.route_handler.resolve_request_max_body_size() or 0
    expected = most if declared is None else min(declared, most or declared)
    return BODY_DEADLINE_SECONDS + expected / BODY_MIN_BYTES_PER_SECOND


async def read_body_in_time(request: Request[Any, Any, Any]) -> None:
    """Read the body now, or answer 408 (RFC 9110 §15.5.9) and close the connection."""
    declared = _declared_length(request)
    if declared == 0:
        return
    try:
        async with asyncio.timeout(_deadline(request, declared)):
            await request.body()
    except TimeoutError:
        raise HTTPException(
            status_code=408,
            detail=f"The request body took too long (over {BODY_DEADLINE_SECONDS:g} s).",
            headers={"Connection": "close"},
        ) from None


async def prepare_request(request: Request[Any, Any, Any]) -> None:
    """Before every handler: the body, in time; then the API's input screen."""
    await read_body_in_time(request)
    await screen_api_input(request)
