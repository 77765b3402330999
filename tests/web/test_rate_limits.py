"""Abuse: token and push requests are limited per caller, with Retry-After; one noisy
company's limit never slows another, and every worker process counts against the same limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from cmr_vault.db.session import unit_of_work
from cmr_vault.errors import TooManyRequests
from cmr_vault.rate_limits import RateHit, RateLimiter, RateLimits
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import Browser
from tests.load.harness import VaultProcess, free_port, vault_env
from tests.marketing.conftest import SALES
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, get_code, redeem, register_company

__all__ = ["browser", "company", "customer"]


@pytest.fixture
def tight(runtime: Runtime) -> Runtime:
    runtime.rate_limits = RateLimits(token_per_minute=3, pushes_per_minute=2,
                                     signups_per_minute=2, caller_key=runtime.rate_limit_key)
    return runtime


def _bad_token_request(client: TestClient[Litestar], company: Company) -> Any:
    return client.post("/oauth/token", data={"grant_type": "authorization_code",
                                             "code": "nope", "code_verifier": "x" * 43},
                       headers=company.auth())


def test_the_token_endpoint_answers_429_with_retry_after_past_the_limit(
    tight: Runtime, client: TestClient[Litestar], company: Company
) -> None:
    answers = [_bad_token_request(client, company) for _ in range(4)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert answers[-1].headers["content-type"].startswith("application/problem+json")


def test_one_clients_limit_does_not_slow_another(
    tight: Runtime, client: TestClient[Litestar], company: Company, db_session: Any
) -> None:
    for _ in range(4):
        _bad_token_request(client, company)
    other = register_company(db_session, tight, name="Quiet Shop")
    assert _bad_token_request(client, other).status_code == 400


def test_pushes_are_limited_per_company(
    tight: Runtime, browser: Browser, client: TestClient[Litestar], company: Company
) -> None:
    code, verifier = get_code(browser, company, scopes=["marketing.email"],
                              scope="marketing.email")
    token = redeem(client, company, code, verifier).json()["access_token"]
    grants = client.get("/api/v1/grants", headers=company.auth()).json()["grants"]
    body = {"subject": grants[0]["subject"], "channel": "inbox", "topic": "sales",
            "purpose": SALES, "title": "Sale", "body": "Now.", "idempotency_key": "k"}
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [client.post("/api/v1/pushes", json={**body, "idempotency_key": f"k{n}"},
                            headers=headers).status_code for n in range(3)]
    assert statuses[:2] != [429, 429]
    assert statuses[2] == 429


def _limiter(runtime: Runtime, now: list[float], limit: int = 1) -> RateLimiter:
    return RateLimiter("token", limit, caller_key=runtime.rate_limit_key, now=lambda: now[0])


def test_the_window_opens_again_after_a_minute(runtime: Runtime, db_session: Session) -> None:
    now = [1_000.0]
    limiter = _limiter(runtime, now)
    limiter.hit(db_session, "a", "requests")
    with pytest.raises(TooManyRequests, match="Try again in 60 s"):
        limiter.hit(db_session, "a", "requests")
    now[0] = 1_045.0
    with pytest.raises(TooManyRequests, match="Try again in 15 s"):
        limiter.hit(db_session, "a", "requests")
    now[0] = 1_060.0
    limiter.hit(db_session, "a", "requests")


def test_workers_count_against_one_limit(runtime: Runtime) -> None:
    """Two limiters stand for two worker processes: the second sees the first's hits."""
    now = [1_000.0]
    workers = [_limiter(runtime, now, limit=3) for _ in range(2)]
    for worker in (workers[0], workers[1], workers[0]):
        with unit_of_work(runtime.engine) as session:
            worker.hit(session, "client:shop", "token requests")
    with unit_of_work(runtime.engine) as session, pytest.raises(TooManyRequests):
        workers[1].hit(session, "client:shop", "token requests")


def test_a_request_that_fails_is_not_counted(runtime: Runtime) -> None:
    now = [1_000.0]
    limiter = _limiter(runtime, now)

    def failing_request() -> None:
        with unit_of_work(runtime.engine) as session:
            limiter.hit(session, "client:shop", "token requests")
            raise LookupError("the request failed after it was counted")

    with pytest.raises(LookupError):
        failing_request()
    with unit_of_work(runtime.engine) as session:
        limiter.hit(session, "client:shop", "token requests")


def test_callers_are_stored_only_as_keyed_hashes(runtime: Runtime) -> None:
    with unit_of_work(runtime.engine) as session:
        _limiter(runtime, [1_000.0]).hit(session, "address:203.0.113.9", "token requests")
    with unit_of_work(runtime.engine) as session:
        keys = session.exec(select(RateHit.caller_key)).all()
    assert len(keys) == 1
    assert "203.0.113.9" not in keys[0] and len(keys[0]) == 64


def test_hits_that_left_the_window_are_forgotten(runtime: Runtime) -> None:
    now = [1_000.0]
    limiter = _limiter(runtime, now, limit=10)
    for caller in ("a", "b", "c"):
        with unit_of_work(runtime.engine) as session:
            limiter.hit(session, caller, "requests")
    now[0] = 1_061.0
    with unit_of_work(runtime.engine) as session:
        limiter.hit(session, "d", "requests")
    with unit_of_work(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(RateHit)).one() == 1


def test_a_live_vault_with_two_workers_holds_one_token_limit(
    settings: Settings, tmp_path: Path
) -> None:
    """Through `cmr-vault serve --workers 2`: each request on a new connection, so the two
    processes share the work; counted per process, up to 10 would pass."""
    port = free_port()
    env = {**vault_env(settings, f"http://127.0.0.1:{port}"),
           "CMR_VAULT_TOKEN_REQUESTS_PER_MINUTE": "5"}
    vault = VaultProcess(env, port, workers=2, log=tmp_path / "vault.log")
    vault.start()
    try:
        statuses = [httpx.post(f"{vault.base_url}/oauth/token",
                               data={"grant_type": "client_credentials"}).status_code
                    for _ in range(12)]
    finally:
        vault.stop()
    assert statuses.count(429) == 7, statuses
    assert 429 not in statuses[:5]
