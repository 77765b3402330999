"""When the database cannot be reached (a restart, a full pool, a network cut) callers get a
503 with Retry-After that says so, never a 500, and the log names the cause without SQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from cmr_vault.db.engine import make_engine
from cmr_vault.runtime import Runtime

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/vault"  # nothing listens on port 1


@pytest.fixture
def database_gone(app: Litestar, runtime: Runtime, client: TestClient[Litestar],
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Litestar]]:
    """The running vault, after its database became unreachable."""
    unreachable = make_engine(UNREACHABLE)
    monkeypatch.setattr(runtime, "engine", unreachable)
    monkeypatch.setattr(app.state, "engine", unreachable)
    yield client
    unreachable.dispose()


def test_an_api_call_gets_a_503_problem_with_retry_after(
    database_gone: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = database_gone.get("/api/v1/grants", auth=("shop", "secret"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:cmr-vault:problem:database-unavailable"
    assert "database unavailable: OperationalError" in caplog.text
    assert "SELECT" not in caplog.text and "[SQL" not in caplog.text


def test_health_tells_the_load_balancer(database_gone: TestClient[Litestar]) -> None:
    assert database_gone.get("/health").status_code == 503


def test_a_person_gets_a_page_that_says_to_try_again(
    database_gone: TestClient[Litestar]
) -> None:
    database_gone.cookies.set("cmr_session", "a-session-token")
    response = database_gone.get("/connections", headers={"Accept": "text/html"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "cannot reach its database right now" in response.text
