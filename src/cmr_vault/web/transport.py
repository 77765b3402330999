"""Bounds on the request head, where uvicorn has none: its size, and how long it may take.

uvicorn's h11 protocol limits only the *incomplete* head it buffers; a head that arrives whole
in one read is parsed whatever its size, and a client that sends one header byte at a time
keeps its connection (and a place in the server) for as long as it likes (slowloris). This
protocol answers a head over `MAX_HEAD_BYTES` with 431 (RFC 6585 §5) and a head not complete
within `HEAD_DEADLINE_SECONDS` with 408, and closes the connection either way. A reverse proxy
in front usually does the same; the vault does not rely on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEAD_BYTES = 32 * 1024
HEAD_DEADLINE_SECONDS = 15.0
_END_OF_HEAD = b"\r\n\r\n"


def _refusal(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def _send_without_delay(transport: asyncio.BaseTransport) -> None:
    """Turn off Nagle's algorithm on a TCP connection.

    asyncio does this only for sockets it knows to be TCP. uvicorn reopens the listening socket
    that `cmr-vault serve` hands it by file descriptor as a Unix socket (`fromfd` cannot know
    the family), and its own sockets for several workers carry no protocol number, so no
    accepted connection looked like TCP. With Nagle on, the body of every keep-alive answer
    waited for the client's delayed ACK of the head: about 40 ms a request.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # a Unix socket: no Nagle to turn off
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BoundedHeadH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a size and a deadline for each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_tail = b""
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _send_without_delay(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head()

    def data_received(self, data: bytes) -> None:
        reading_head = self.conn.their_state is h11.IDLE and self._head_deadline is not None
        if reading_head and self._head_too_large(data):
            self._refuse(431, "Request Header Fields Too Large",
                         f"The request head is over {MAX_HEAD_BYTES} bytes.")
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_deadline()

    def _head_too_large(self, data: bytes) -> bool:
        """Count head bytes up to the blank line that ends the head (it may span reads)."""
        seen = self._head_tail + data
        end = seen.find(_END_OF_HEAD)
        head_part = len(data) if end < 0 else max(0, end + 4 - len(self._head_tail))
        self._head_bytes += head_part
        self._head_tail = seen[-3:]
        return self._head_bytes > MAX_HEAD_BYTES

    def _start_head(self) -> None:
        self._stop_head_deadline()
        self._head_bytes, self._head_tail = 0, b""
        self._head_deadline = self.loop.call_later(HEAD_DEADLINE_SECONDS, self._head_too_slow)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._head_bytes or self._head_tail:
                self._refuse(408, "Request Timeout",
                             f"The request head took over {HEAD_DEADLINE_SECONDS:g} seconds.")
            else:
                self.transport.close()  # an idle connection: nothing to answer

    def _refuse(self, status: int, reason: str, text: str) -> None:
        self._stop_head_deadline()
        self.logger.warning("%s: %s", self.client, text)
        self.transport.write(_refusal(status, reason, text))
        self.transport.close()
