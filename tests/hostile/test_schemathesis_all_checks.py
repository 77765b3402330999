"""schemathesis over the machine API with every check it has (SECURITY.md S2, S3), on SQLite and
PostgreSQL, authenticated as company A; plus the checks its own cannot do here:

- `tenant_isolation` (S3, registered with `@schemathesis.check`): every 2xx company A gets is
  replayed with company B's credentials; B must be refused (401/403/404) where the path names one
  of A's resources, and nothing of A's (pseudonym, client id, grant ids, the customer's e-mail or
  name) may reach B that B did not send itself.
- `credentials_enforced`: the OpenAPI document declares no security scheme, so schemathesis'
  own `ignored_auth` and `missing_required_header` have nothing to go on; this check does their
  job: a 2xx with credentials must become a 401 without them and with wrong ones.
- a deterministic sweep over every operation that names a resource in its path, with A's real
  identifiers, as B then as A.

Failures are left failing on purpose: each is a bug in src/ to fix, not in the test.
"""

from __future__ import annotations

import json
import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from tests.hostile.conftest import Credentials

MACHINE_API = r"^/(api/|oauth/|\.well-known/)"
# Public by design: the transparency log, receipt verification and discovery documents.
PUBLIC = ("/api/v1/audit/", "/api/v1/receipts", "/.well-known", "/oauth/")
# Not company-scoped: the operator and the auditor have credentials of their own.
NOT_COMPANY = ("/api/v1/admin", "/api/v1/auditor")
MAX_EXAMPLES = int(os.environ.get("CMR_VAULT_FUZZ_EXAMPLES", "6"))


class _Bound:
    """The credentials of the test that is running (checks get no fixtures)."""

    credentials: Credentials | None = None
    markers: dict[str, str] = {}


def _request_text(case: Any) -> str:
    return json.dumps([case.formatted_path, case.query, case.body, case.path_parameters],
                      default=str)


def _declared(case: Any) -> bool:
    """The case uses the operation's own method (not an `unsupported_method` probe)."""
    return bool(case.method.upper() == case.operation.method.upper())


def _leaks(text: str, sent: str) -> list[str]:
    return [name for name, value in _Bound.markers.items() if value in text and value not in sent]


@schemathesis.check
def tenant_isolation(ctx: Any, response: Any, case: Any) -> bool | None:
    """Nothing company A may see reaches company B (S3)."""
    credentials = _Bound.credentials
    if (credentials is None or not 200 <= response.status_code < 300 or not _declared(case)
            or case.path.startswith(PUBLIC + NOT_COMPANY) or not case.path.startswith("/api/")):
        return None
    replay = case.call(headers=credentials.for_path(case.path, other=True))
    sent = _request_text(case)
    names_a_resource = any(value in case.formatted_path for value in _Bound.markers.values())
    if names_a_resource and replay.status_code not in (401, 403, 404):
        raise AssertionError(f"company B got {replay.status_code} for A's resource: "
                             f"{case.method} {case.formatted_path}")
    leaked = _leaks(replay.text, sent)
    if leaked:
        raise AssertionError(f"company B saw A's {leaked} via {case.method} {case.formatted_path} "
                             f"({replay.status_code})")
    return None


@schemathesis.check
def credentials_enforced(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 2xx with credentials is a 401 without them, and with wrong ones."""
    credentials = _Bound.credentials
    if (credentials is None or not 200 <= response.status_code < 300 or not _declared(case)
            or case.path.startswith(PUBLIC) or not case.path.startswith("/api/")):
        return None
    good = credentials.for_path(case.path)
    wrong = {name: value[:-4] + "AAAA" for name, value in good.items()}
    for label, headers in (("no credentials", {}), ("wrong credentials", wrong)):
        # Override the Authorization / Cookie header the call would otherwise carry.
        probe = case.call(headers={"Authorization": "", "Cookie": "", **headers})
        if probe.status_code != 401:
            raise AssertionError(f"{case.method} {case.formatted_path} with {label}: "
                                 f"{probe.status_code}, expected 401")
        if not probe.headers.get("content-type", "").startswith("application/problem+json"):
            raise AssertionError(f"{case.method} {case.formatted_path} with {label}: 401 "
                                 "without an RFC 9457 problem body")
    return None


load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())


def _bind(credentials: Credentials, client: TestClient[Litestar]) -> None:
    _Bound.credentials = credentials
    grants = client.get("/api/v1/grants", headers=credentials.company.auth()).json()["grants"]
    _Bound.markers = {"subject": credentials.subject, "client_id": credentials.company.client_id,
                      "email": "ada@example.org", "given_name": "Ada"}
    _Bound.markers |= {f"grant {i}": str(g["grant_id"]) for i, g in enumerate(grants)}


@pytest.fixture
def bound(credentials: Credentials, fuzz_client: TestClient[Litestar]) -> Any:
    _bind(credentials, fuzz_client)
    yield credentials
    _Bound.credentials = None
    _Bound.markers = {}


@pytest.fixture
def all_checks_schema(fuzz_app: Litestar, bound: Credentials) -> Any:
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_app).include(
        path_regex=MACHINE_API)
    schema.config.generation.update(
        max_examples=MAX_EXAMPLES, modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        deterministic=True, database="none")
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    return schema


schema = schemathesis.pytest.from_fixture("all_checks_schema").include(path_regex=MACHINE_API)


@pytest.fixture(autouse=True)
def _schemathesis_on_pytest_9(request: pytest.FixtureRequest) -> None:
    """schemathesis' pytest plugin renames `request.node._nodeid`, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(HealthCheck),
                     phases=[Phase.explicit, Phase.generate], derandomize=True, database=None)
def test_every_check_as_company_a(case: Any, bound: Credentials) -> None:
    case.call_and_validate(headers=bound.for_path(case.path), checks=ALL_CHECKS)


# ---- the deterministic sweep: A's real identifiers, as company B, then as company A ----------

def _a_resources(client: TestClient[Litestar], credentials: Credentials) -> dict[str, str]:
    a_basic = credentials.company.auth()
    a_bearer = {"Authorization": f"Bearer {credentials.bearer}"}
    push = client.post("/api/v1/pushes", headers=a_bearer, json={
        "subject": credentials.subject, "channel": "inbox", "topic": "sales",
        "purpose": "Tell you about sales", "title": "Sale", "body": "Half price",
        "idempotency_key": "fuzz-push-1"})
    campaign = client.post("/api/v1/campaigns", headers=a_basic, json={
        "subjects": [credentials.subject], "channel": "inbox", "purpose": "Tell you about sales",
        "title": "Sale", "body": "Half price", "dry_run": False})
    programme = client.post("/api/v1/programmes", headers=a_basic, json={
        "kind": "feedback", "name": "Feedback round"})
    events = client.get("/api/v1/events", headers=a_basic).json()
    ids = {"grant_id": _Bound.markers["grant 0"], "subject": credentials.subject}
    for name, response in (("message_id", push), ("campaign_id", campaign),
                           ("programme_id", programme)):
        # A push needs the customer's opt-in, which this fixture does not give: then it is
        # simply not swept.
        if response.status_code < 300:
            ids[name] = str(response.json()[name])
    assert events["events"], events
    ids["event_id"] = str(events["events"][0]["id"])
    return ids


def test_company_b_cannot_reach_any_resource_of_company_a(
    fuzz_client: TestClient[Litestar], fuzz_app: Litestar, bound: Credentials
) -> None:
    ids = _a_resources(fuzz_client, bound)
    _Bound.markers |= {k: v for k, v in ids.items()}
    doc = fuzz_client.get("/schema/openapi.json").json()
    bodies = {"/api/v1/programmes/{programme_id}/invitations": {"subjects": [bound.subject],
                                                                  "title": "Join", "body": "Us"},
              "/api/v1/grants/{grant_id}/value-fulfilled": {}}
    failures = []
    swept = 0
    for path, operations in doc["paths"].items():
        if "{" not in path or not path.startswith("/api/v1/") or path.startswith(
                PUBLIC + NOT_COMPANY):
            continue
        for method in ("get", "post", "put", "delete"):
            if method not in operations:
                continue
            names = [p["name"] for p in operations[method].get("parameters", [])
                     if p["in"] == "path"]
            if not all(name in ids for name in names):
                continue
            url = path.format(**{name: ids[name] for name in names})
            params = ({"fields": "email", "purpose": "Send your order receipts"}
                      if "/profile" in path else None)
            swept += 1
            as_b = fuzz_client.request(method.upper(), url, params=params,
                                       json=bodies.get(path) if method != "get" else None,
                                       headers=bound.for_path(url, other=True))
            leaked = _leaks(as_b.text, url)
            if as_b.status_code not in (401, 403, 404) or leaked:
                failures.append(f"{method.upper()} {url} as B: {as_b.status_code} "
                                f"leaked={leaked} {as_b.text[:300]}")
    assert swept >= 5, swept
    assert failures == [], "\n".join(failures)
