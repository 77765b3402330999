"""schemathesis in process (checklist S2), on SQLite and on PostgreSQL: every operation of
the OpenAPI document, every check schemathesis has (positive and negative data, credentials
ignored or missing, status codes, content types, headers, response schemas, the Allow header),
and ours: nothing company A gets reaches company B (S3).

Credentials go in as schemathesis' OpenAPI-aware auth, one per security scheme the document
declares, so it knows which requests carry valid credentials and which it stripped on purpose.
tests/hostile/test_schemathesis_cli.py runs the command line, stateful phase included, over HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar import Litestar
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config._auth import AuthConfig

from tests.hostile.conftest import ADMIN_TOKEN, Credentials

MACHINE_API = r"^/(api/|\.well-known/|health$)"
NOT_COMPANY_SCOPED = ("/api/v1/audit/", "/api/v1/receipts", "/api/v1/admin", "/api/v1/auditor")

load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())


@pytest.fixture
def api_schema(fuzz_app: Litestar, credentials: Credentials) -> Any:
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_app).include(
        path_regex=MACHINE_API)
    company = credentials.company
    schema.config.auth = AuthConfig(openapi={
        "companyClient": {"username": company.client_id, "password": company.secret},
        "accessToken": {"bearer": credentials.bearer},
        "operatorToken": {"bearer": ADMIN_TOKEN},
        "auditorSession": {"api_key": credentials.auditor_session},
    })
    schema.config.generation.update(allow_x00=False, codec="utf-8")
    return schema


def _tenant_isolation(case: Any, response: Any, credentials: Credentials) -> None:
    """Replay a success of company A as company B: B gets nothing of A's."""
    if (response.status_code >= 300 or not case.path.startswith("/api/")
            or case.path.startswith(NOT_COMPANY_SCOPED)
            or case.method.upper() != case.operation.method.upper()):
        return
    replay = case.call(headers=credentials.for_path(case.path, other=True))
    if credentials.subject in case.formatted_path:
        assert replay.status_code in (401, 403, 404), f"B reached A's {case.formatted_path}"
    if replay.status_code < 300:
        assert credentials.subject not in replay.text, f"B saw A's customer via {case.path}"
        assert credentials.company.client_id not in replay.text, f"B saw A's data: {case.path}"


def _fuzz(operation: Any, credentials: Credentials, examples: int, reached: set[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:
        response = case.call()
        if response.status_code < 300:
            reached.add(operation.label)
        case.validate_response(response, checks=ALL_CHECKS)
        _tenant_isolation(case, response, credentials)

    run()


def test_every_operation_passes_every_check_and_isolates_companies(
    api_schema: Any, credentials: Credentials
) -> None:
    failures: list[str] = []
    reached: set[str] = set()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 40
    for operation in operations:
        try:
            _fuzz(operation, credentials, examples=8, reached=reached)
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)
    # The credentials worked: most operations answered a generated request with a success.
    assert len(reached) >= 20, sorted(reached)
