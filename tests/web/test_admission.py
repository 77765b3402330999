"""A company read that would wait at a full database gate is turned away at the door: a 503
problem with Retry-After before any work is done for it (not even checking its parameters or
credentials), while /health goes on answering."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from cmr_vault.db.session import DatabaseGate


@pytest.fixture
def gate_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every database turn taken and the queue as long as it may be."""
    monkeypatch.setattr(DatabaseGate, "full", property(lambda _gate: True))


def test_a_read_at_a_full_gate_is_shed_before_anything_is_checked(
    client: TestClient[Litestar], gate_full: None
) -> None:
    response = client.get("/api/v1/subjects/someone/profile")  # no fields, purpose or token

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:cmr-vault:problem:unavailable"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_an_introspection_at_a_full_gate_is_shed_before_its_caller_is_checked(
    client: TestClient[Litestar], gate_full: None
) -> None:
    assert client.post("/oauth/introspect", data={"token": "t"}).status_code == 503


def test_with_room_at_the_gate_the_same_requests_are_checked_as_usual(
    client: TestClient[Litestar],
) -> None:
    assert client.get("/api/v1/subjects/someone/profile").status_code == 400
    assert client.post("/oauth/introspect", data={"token": "t"}).status_code == 401


def test_health_answers_while_reads_are_shed(
    client: TestClient[Litestar], gate_full: None
) -> None:
    assert client.get("/health").status_code == 200
