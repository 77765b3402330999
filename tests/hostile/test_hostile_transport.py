"""Hostile input at the transport: deep JSON, invalid UTF-8, huge headers, slow clients, bodies
too large with or without a Content-Length, against a real server process. Each gets a clear,
bounded answer (a status a client can act on, an RFC 9457 problem where the app answers) and
the vault keeps serving others."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cmr_vault.web.bodies import BODY_DEADLINE_SECONDS
from cmr_vault.web.transport import HEAD_DEADLINE_SECONDS, MAX_HEAD_BYTES
from tests.e2e.conftest import live_data_dir, live_vault

__all__ = ["live_data_dir", "live_vault"]
PROBLEM = "application/problem+json"


def _address(live_vault: str) -> tuple[str, int]:
    parts = urlsplit(live_vault)
    return str(parts.hostname), int(parts.port or 80)


def test_deeply_nested_json_gets_a_problem_not_a_crash(live_vault: str) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    response = httpx.post(f"{live_vault}/api/v1/receipts/verify", content=body,
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{live_vault}/health").status_code == 200


def test_invalid_utf8_json_gets_a_problem(live_vault: str) -> None:
    response = httpx.post(f"{live_vault}/api/v1/receipts/verify", content=b'{"a": "\xff\xfe"}',
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_slow_clients_do_not_hold_up_the_others(live_vault: str) -> None:
    slow = []
    for _ in range(50):
        sock = socket.create_connection(_address(live_vault), timeout=10)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        slow.append(sock)
    try:
        started = time.monotonic()
        assert httpx.get(f"{live_vault}/health", timeout=10).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in slow:
            sock.close()


def _status_line(sock: socket.socket) -> bytes:
    try:
        return sock.recv(200).split(b"\r\n", 1)[0]
    except (ConnectionResetError, TimeoutError):
        return b""


def test_an_oversized_body_gets_a_413_problem(live_vault: str) -> None:
    response = httpx.post(f"{live_vault}/api/v1/receipts/verify", content=b"{" + b" " * 5_000_000
                          + b"}", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 413


def test_an_oversized_chunked_body_is_cut_off_too(live_vault: str) -> None:
    """No Content-Length to refuse up front: the server must stop reading at its limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"a": "'
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB, far over the limit
            yield b"x" * 65536
        yield b'"}'

    response = httpx.post(f"{live_vault}/api/v1/receipts/verify", content=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)
    assert httpx.get(f"{live_vault}/health").status_code == 200


def test_a_huge_header_gets_a_431_status_line(live_vault: str) -> None:
    """RFC 6585 §5: 431 Request Header Fields Too Large, not a bare reset."""
    with socket.create_connection(_address(live_vault), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        status = _status_line(sock)
    assert status.split(b" ")[1:2] == [b"431"], status
    assert httpx.get(f"{live_vault}/health").status_code == 200


def test_a_head_of_many_small_headers_over_the_limit_gets_a_431(live_vault: str) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: a\r\n" % i for i in range(5000)) + b"\r\n"
    assert len(head) > MAX_HEAD_BYTES
    with socket.create_connection(_address(live_vault), timeout=10) as sock:
        sock.sendall(head)
        status = _status_line(sock)
    assert status.split(b" ")[1:2] == [b"431"], status
    assert httpx.get(f"{live_vault}/health").status_code == 200


def test_a_client_dribbling_its_headers_is_cut_off(live_vault: str) -> None:
    """Slowloris: one header byte a second never completes a request; the server must close the
    connection within a bounded time rather than keep it (and a worker's slot) open."""
    sock = socket.create_connection(_address(live_vault), timeout=5)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed_after = None
    try:
        while time.monotonic() - started < HEAD_DEADLINE_SECONDS + 10:
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            sock.settimeout(1)
            try:
                if sock.recv(200) == b"":
                    closed_after = time.monotonic() - started
                    break
            except ConnectionResetError:  # cut off with a reset rather than a clean close
                closed_after = time.monotonic() - started
                break
            except TimeoutError:
                pass
    finally:
        sock.close()
    assert closed_after is not None, (
        f"a client still sending its request head after {HEAD_DEADLINE_SECONDS + 10} s "
        "was not cut off")
    assert closed_after <= HEAD_DEADLINE_SECONDS + 3
    assert httpx.get(f"{live_vault}/health").status_code == 200


OAUTH_FORM_ENDPOINTS = ["/oauth/token", "/oauth/revoke", "/oauth/introspect"]
UNKNOWN_CLIENT = {"grant_type": "authorization_code", "code": "x", "client_id": "nobody"}


def _stall_body(live_vault: str, path: str) -> socket.socket:
    """A client that sends its head and a tenth of its form body, then waits."""
    sock = socket.create_connection(_address(live_vault), timeout=BODY_DEADLINE_SECONDS + 10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
                 "grant_type=".encode())
    return sock


def _database_answers(live_vault: str) -> bool:
    """Whether a request that needs the database (the token endpoint counts it against the
    caller's limit) gets its RFC 6749 answer within 10 s."""
    response = httpx.post(f"{live_vault}/oauth/token", data=UNKNOWN_CLIENT, timeout=10)
    return response.status_code in (400, 401) and "error" in response.json()


@pytest.mark.parametrize("path", OAUTH_FORM_ENDPOINTS)
def test_a_client_stalling_its_form_body_does_not_hold_up_the_database(
    live_vault: str, path: str
) -> None:
    stalled = _stall_body(live_vault, path)
    try:
        assert _database_answers(live_vault)
        assert httpx.get(f"{live_vault}/", timeout=10).status_code == 200
    finally:
        stalled.close()


def test_a_body_that_stops_arriving_gets_a_408(live_vault: str) -> None:
    with _stall_body(live_vault, "/oauth/token") as sock:
        status = _status_line(sock)
    assert status.split(b" ")[1:2] == [b"408"], status
    assert _database_answers(live_vault)


def test_health_answers_503_while_requests_are_stuck_behind_the_database(
    live_vault: str, live_data_dir: str
) -> None:
    """Something outside the vault holds SQLite's write lock: the request that has its turn
    waits for it, and so does every request behind; /health must say so, not answer 200."""
    holder = sqlite3.connect(Path(live_data_dir) / "cmr_vault.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiting = threading.Thread(target=lambda: httpx.post(
        f"{live_vault}/oauth/token", data=UNKNOWN_CLIENT, timeout=60))
    waiting.start()
    try:
        statuses = []
        for _ in range(5):
            statuses.append(httpx.get(f"{live_vault}/health", timeout=10).status_code)
            if statuses[-1] == 503:
                break
        assert statuses[-1] == 503, statuses
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiting.join()
    assert httpx.get(f"{live_vault}/health", timeout=10).status_code == 200
