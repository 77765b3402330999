"""Shedding at the door: a read that would only be turned away at a full database gate is
turned away before anything else is done for it.

Under a flood (a client that resends at once, like a load generator with hundreds of
connections) the event loop spends its time on requests it then refuses. Each refusal that
went through dependencies, the handler and the exception handlers cost the loop most of a
millisecond, so the reads already admitted waited behind hundreds of refusals at every step,
and /health behind all of them. A refusal here costs a header parse and one small response.
"""

from __future__ import annotations

import json

from litestar.types import ASGIApp, Receive, Scope, Send

from cmr_vault.db.session import database_gate

# Route handlers whose work waits at the read-only gate carry this in their `opt`.
READ_GATE = "cmr_vault.read_gate"

_BODY = json.dumps(
    {
        "type": "urn:cmr-vault:problem:unavailable",
        "title": "Temporarily unavailable",
        "status": 503,
        "detail": "The vault is busy: too many requests wait for the database. Try again in a "
        "second.",
    }
).encode()


class ShedWhenFull:
    """Answer 503 with Retry-After at once for a read whose gate is full."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler") if scope["type"] == "http" else None
        if (
            handler is not None
            and handler.opt.get(READ_GATE)
            and database_gate(scope["app"].state, read_only=True).full
        ):
            await _refuse(send)
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(_BODY)).encode()),
                (b"retry-after", b"1"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
