"""Abuse: token and push requests are limited per caller, with Retry-After, and one noisy
company's limit never slows another."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from cmr_vault.rate_limits import RateLimiter, RateLimits
from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.marketing.conftest import SALES
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, get_code, redeem, register_company

__all__ = ["browser", "company", "customer"]


@pytest.fixture
def tight(runtime: Runtime) -> Runtime:
    runtime.rate_limits = RateLimits(token_per_minute=3, pushes_per_minute=2)
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


def test_the_window_opens_again_after_a_minute() -> None:
    now = [0.0]
    limiter = RateLimiter(1, 60, now=lambda: now[0])
    limiter.hit("a", "requests")
    with pytest.raises(Exception, match="Try again in 60 s"):
        limiter.hit("a", "requests")
    now[0] = 60.0
    limiter.hit("a", "requests")
