"""A request refused while its dependencies are being resolved must end its database
transaction at once: on SQLite it holds the gate every request waits for, and leaving it to
the garbage collector froze the vault for minutes."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

TOKEN_FORM = {"grant_type": "authorization_code", "code": "x", "client_id": "nobody"}


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """Only reference counting frees objects, as when the cycle collector has not run yet."""
    gc.disable()
    yield
    gc.enable()
    gc.collect()


def _answers_within(client: TestClient[Litestar], seconds: float, **request: Any) -> bool:
    answers: list[Any] = []
    caller = threading.Thread(target=lambda: answers.append(client.request(**request)))
    caller.start()
    caller.join(seconds)
    return bool(answers)


def test_a_token_request_that_is_not_a_form_leaves_the_database_to_the_next(
    client: TestClient[Litestar], no_cycle_collector: None
) -> None:
    """The form is refused while the session beside it already holds the gate."""
    for _ in range(3):
        refused = client.post("/oauth/token", content=b"grant_type=x",
                              headers={"Content-Type": "text/plain"})
        assert refused.json()["error"] == "invalid_request"
    assert _answers_within(client, 10, method="POST", url="/oauth/token", data=TOKEN_FORM)
