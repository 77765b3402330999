"""When the database cannot be reached (a restart, a full pool, a network cut) callers get a
503 with Retry-After that says so, never a 500, and the log names the cause without SQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from cmr_vault.db.engine import make_engine
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from tests.factories import Browser

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



def test_a_connection_lost_mid_request_is_a_503_even_when_its_rollback_fails_too(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    Browser(client).sign_up()

    def lost(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT", None, ConnectionError("server closed the connection"))

    monkeypatch.setattr(vault_service, "read_profile", lost)
    monkeypatch.setattr(Session, "rollback", lost)
    response = client.get("/profile")
    assert response.status_code == 503
    assert "cannot reach its database right now" in response.text
