"""Who is calling the company API: a bearer token's grant, or a company's own credentials.

The guard reads the token's grant on every request instead of trusting the token alone, so a
revoked, expired, relinquished or compromised grant (or a suspended company) stops every token
on the very next request (RFC 6750 §3 for the error responses).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from urllib.parse import unquote

import anyio.to_thread
from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy import Connection, Engine
from sqlmodel import Session

from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.db.session import read_aside
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import Forbidden, Unauthenticated, ValidationFailed
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import ClientStatus, OAuthClient, OAuthToken
from cmr_vault.runtime import Runtime
from cmr_vault.web.bodies import prepare_request


@dataclass(frozen=True)
class CompanyAccess:
    """A live token, its grant and its company; `scopes` is what is in force right now."""

    token: OAuthToken
    grant: Grant
    client: OAuthClient
    scopes: frozenset[str]


CompanyAccessDep: TypeAlias = NamedDependency[CompanyAccess]
CompanyClient: TypeAlias = NamedDependency[OAuthClient]


def _bearer_challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="cmr-vault"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def insufficient_scope(detail: str, needed: str) -> Forbidden:
    """403 with the RFC 6750 challenge naming the scope that is missing."""
    return Forbidden(
        detail,
        problems={"scope": f"requires {needed}"},
        headers=_bearer_challenge("insufficient_scope", f"requires {needed}"),
    )


def _invalid_token(detail: str) -> Unauthenticated:
    return Unauthenticated(detail, headers=_bearer_challenge("invalid_token", detail))


def bearer_token(request: Request[Any, Any, Any]) -> str:
    """The access token of `Authorization: Bearer …`, or a refusal (never one from the URL)."""
    if "access_token" in request.query_params:
        raise ValidationFailed(
            "Send the access token in the Authorization header, never in the URL.",
            problems={"access_token": "not accepted in the query string"},
            headers=_bearer_challenge("invalid_request", "token in query string"),
        )
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("A bearer access token is required.", headers=_bearer_challenge())
    return value.strip()


def company_access(connection: Connection, access_token: str, now: datetime) -> CompanyAccess:
    """The live token, grant and company behind `access_token` (one query), or 401.

    Read afresh on every request, in whichever worker or host serves it: revocation, expiry,
    a relinquished grant and a suspended company stop the token on the very next request.
    """
    found = oauth_service.find_bearer(connection, access_token)
    if found is None or not oauth_service.access_token_is_live(found[0], now):
        raise _invalid_token("The access token is unknown, expired or revoked.")
    token, grant, client = found
    if not consent_service.is_usable(grant, now):
        raise _invalid_token("The customer's consent behind this token is no longer in force.")
    if client.status != ClientStatus.APPROVED:
        raise _invalid_token("This company is suspended.")
    in_force = frozenset(token.scope.split()) & frozenset(json.loads(grant.scopes))
    return CompanyAccess(token=token, grant=grant, client=client, scopes=in_force)


def provide_company_access(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> CompanyAccess:
    """Resolve `Authorization: Bearer …` to a usable grant, or refuse with 401."""
    return company_access(db_session.connection(), bearer_token(request), runtime.clock.now())


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(client_id, secret) from an HTTP Basic header, URL-decoded (RFC 6749 §2.3.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if sep else None


def company_from_credentials(session: Session, authorization: str) -> OAuthClient:
    """The approved company whose client id and secret the HTTP Basic header carries."""
    credentials = basic_credentials(authorization)
    challenge = {"WWW-Authenticate": 'Basic realm="cmr-vault"'}
    if credentials is None:
        raise Unauthenticated("Authenticate with your client id and secret.", headers=challenge)
    client = session.get(OAuthClient, credentials[0])
    if (
        client is None
        or not oauth_service.client_secret_matches(client, credentials[1])
        or client.status != ClientStatus.APPROVED
    ):
        raise Unauthenticated("Unknown client or wrong secret.", headers=challenge)
    return client


def provide_company_client(request: Request[Any, Any, Any], db_session: DbSession) -> OAuthClient:
    """A confidential company authenticating as itself (HTTP Basic with its client secret)."""
    return company_from_credentials(db_session, request.headers.get("authorization", ""))


def _check_company(engine: Engine, authorization: str) -> None:
    with read_aside(engine) as session:
        company_from_credentials(session, authorization)


async def company_before_body(request: Request[Any, Any, Any]) -> None:
    """Before a route that takes more than the app-wide body limit reads its body: the company
    authenticates first, so a caller without credentials is refused before it can make the
    vault receive, hold and scan tens of megabytes (the handler's dependency checks again)."""
    runtime: Runtime = request.app.state.runtime
    await anyio.to_thread.run_sync(
        _check_company, runtime.engine, request.headers.get("authorization", ""))
    await prepare_request(request)
