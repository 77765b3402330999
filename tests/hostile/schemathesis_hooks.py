"""A schemathesis check of our own, loaded by the command line (`SCHEMATHESIS_HOOKS`):
nothing company A gets may reach company B (checklist S3).

Every 2xx that company A's credentials get on the company API is replayed with company B's.
Where the path names one of A's resources B must be refused (401, 403 or 404); and whatever B
gets must not carry A's identifiers (A's client id, the pseudonym A knows its customer by, the
customer's e-mail) unless B sent them itself. The test that runs the command line passes both
companies' credentials and A's identifiers in the environment.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import schemathesis

# Public by design (the transparency log, receipt checks, discovery), or not a company's
# (the operator's and the auditor's APIs have credentials of their own).
NOT_COMPANY_SCOPED = ("/api/v1/audit/", "/api/v1/receipts", "/api/v1/admin", "/api/v1/auditor")


def _b_credentials(path: str) -> dict[str, str]:
    bearer_paths = ("/api/v1/pushes", "/api/v1/consent-check", "/api/v1/subjects")
    if path.startswith(bearer_paths):
        return {"Authorization": f"Bearer {os.environ['CMR_VAULT_FUZZ_B_TOKEN']}"}
    pair = f"{os.environ['CMR_VAULT_FUZZ_B_CLIENT_ID']}:{os.environ['CMR_VAULT_FUZZ_B_SECRET']}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _markers() -> dict[str, str]:
    return json.loads(os.environ["CMR_VAULT_FUZZ_A_MARKERS"])


@schemathesis.check
def tenant_isolation(ctx: Any, response: Any, case: Any) -> bool | None:
    """Replay A's success as company B: refused where it names A's resource, and no leak."""
    if (not 200 <= response.status_code < 300 or not case.path.startswith("/api/")
            or case.path.startswith(NOT_COMPANY_SCOPED)
            or case.method.upper() != case.operation.method.upper()):
        return None
    replay = case.call(headers=_b_credentials(case.path))
    sent = json.dumps([case.formatted_path, case.query, case.body], default=str)
    markers = _markers()
    names_a_resource = any(value in case.formatted_path for value in markers.values())
    if names_a_resource and replay.status_code not in (401, 403, 404):
        raise AssertionError(f"company B got {replay.status_code} for company A's resource "
                             f"{case.method} {case.formatted_path}")
    leaked = [name for name, value in markers.items()
              if value in replay.text and value not in sent]
    if leaked:
        raise AssertionError(f"company B saw company A's {', '.join(leaked)} through "
                             f"{case.method} {case.formatted_path} ({replay.status_code})")
    return None


OAUTH_STATUSES = {200, 400, 401, 429}
OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope", "unsupported_token_type"}
# RFC 9126 §2.3: a pushed request is refused with the authorization endpoint's errors too
# (RFC 6749 §4.1.2.1), and RFC 9396 §5 adds one for authorization details.
PAR_ERRORS = OAUTH_ERRORS | {"unsupported_response_type", "invalid_authorization_details"}


@schemathesis.check
def oauth_answers(ctx: Any, response: Any, case: Any) -> bool | None:
    """The form-encoded OAuth endpoints (checklist S4): never cached, and every refusal an
    RFC 6749 §5.2 error object."""
    if (not case.path.startswith("/oauth/")
            or case.method.upper() != case.operation.method.upper()):  # 405 probes: elsewhere
        return None
    pushed = case.path == "/oauth/par"
    if response.status_code not in (OAUTH_STATUSES | {201} if pushed else OAUTH_STATUSES):
        raise AssertionError(f"{case.path} answered {response.status_code}")
    if response.status_code == 429:
        return None
    cache = response.headers.get("cache-control") or [""]
    if "no-store" not in (cache[0] if isinstance(cache, list) else cache):
        raise AssertionError(f"{case.path} {response.status_code} without Cache-Control: "
                             "no-store")
    if response.status_code in (400, 401) and response.json().get("error") not in (
            PAR_ERRORS if pushed else OAUTH_ERRORS):
        raise AssertionError(f"{case.path} {response.status_code} is not an RFC 6749 error: "
                             f"{response.text[:200]}")
    return None
