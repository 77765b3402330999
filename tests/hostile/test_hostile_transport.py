"""Hostile input at the transport: deep JSON, invalid UTF-8, huge headers, slow clients, against
a real server process. Each gets a clear, bounded answer and the vault keeps serving others."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.e2e.conftest import live_data_dir, live_vault

__all__ = ["live_data_dir", "live_vault"]


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


def test_a_huge_header_is_refused_and_the_server_goes_on(live_vault: str) -> None:
    with socket.create_connection(_address(live_vault), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        try:
            answer = sock.recv(200)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200")
    assert httpx.get(f"{live_vault}/health").status_code == 200


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


def test_an_oversized_body_is_refused_before_it_is_read(live_vault: str) -> None:
    response = httpx.post(f"{live_vault}/api/v1/receipts/verify", content=b"{" + b" " * 5_000_000
                          + b"}", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413
