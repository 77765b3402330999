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
from cmr_vault.oauth import dpop
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.discovery import resource_metadata_url
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


def _bearer_challenge(error: str | None = None, description: str | None = None,
                      resource_metadata: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="cmr-vault"'
    if resource_metadata:
        # RFC 9728 §5.1: where a client learns which authorization server to ask.
        value += f', resource_metadata="{resource_metadata}"'
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


def _invalid_token(detail: str, resource_metadata: str) -> Unauthenticated:
    return Unauthenticated(detail, headers=_bearer_challenge("invalid_token", detail,
                                                             resource_metadata))


@dataclass(frozen=True)
class PresentedToken:
    """An access token as a request presents it: its scheme and, for DPoP, the proof and the
    request the proof must name (RFC 9449 §4.3)."""

    scheme: str  # "bearer" or "dpop", lower case
    value: str
    proofs: list[str]
    method: str
    uri: str
    resource_metadata: str  # RFC 9728: named in every challenge


def presented_token(request: Request[Any, Any, Any], issuer: str) -> PresentedToken:
    """The access token of `Authorization: Bearer|DPoP …`, or a refusal (never one from the
    URL)."""
    described_at = resource_metadata_url(issuer)
    if "access_token" in request.query_params:
        raise ValidationFailed(
            "Send the access token in the Authorization header, never in the URL.",
            problems={"access_token": "not accepted in the query string"},
            headers=_bearer_challenge("invalid_request", "token in query string", described_at),
        )
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not value.strip():
        raise Unauthenticated("A bearer access token is required.",
                              headers=_bearer_challenge(resource_metadata=described_at))
    return PresentedToken(
        scheme=scheme.lower(), value=value.strip(),
        proofs=dpop.header_values(request.headers, "dpop"), method=request.method,
        uri=issuer + request.url.path, resource_metadata=described_at)


def company_access(connection: Connection, presented: PresentedToken,
                   now: datetime) -> CompanyAccess:
    """The live token, grant and company behind a presented token (one query), or 401.

    Read afresh on every request, in whichever worker or host serves it: revocation, expiry,
    a relinquished grant and a suspended company stop the token on the very next request.
    The DPoP proof is checked apart (`check_sender`), because spending it is a write.
    """
    described_at = presented.resource_metadata
    found = oauth_service.find_bearer(connection, presented.value)
    if found is None or not oauth_service.access_token_is_live(found[0], now):
        raise _invalid_token("The access token is unknown, expired or revoked.", described_at)
    token, grant, client = found
    if not consent_service.is_usable(grant, now):
        raise _invalid_token("The customer's consent behind this token is no longer in force.",
                             described_at)
    if client.status != ClientStatus.APPROVED:
        raise _invalid_token("This company is suspended.", described_at)
    in_force = frozenset(token.scope.split()) & frozenset(json.loads(grant.scopes))
    return CompanyAccess(token=token, grant=grant, client=client, scopes=in_force)


def needs_sender_check(access: CompanyAccess, presented: PresentedToken) -> bool:
    """Whether the request must go through `check_sender` (a bound token, or the DPoP scheme);
    a plain bearer request needs no write and stays on the read-only path."""
    return access.token.dpop_jkt is not None or presented.scheme == "dpop"


def check_sender(session: Session, access: CompanyAccess, presented: PresentedToken,
                 now: datetime) -> None:
    """A DPoP-bound token only with a fresh proof by its key (spent in the database, so no
    worker accepts it twice); a bearer token only as Bearer."""
    dpop.check_presentation(
        session, token=access.token, scheme=presented.scheme, proofs=presented.proofs,
        method=presented.method, uri=presented.uri, access_token=presented.value, now=now)


def provide_company_access(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> CompanyAccess:
    """Resolve `Authorization: Bearer|DPoP …` to a usable grant, or refuse with 401."""
    presented = presented_token(request, runtime.settings.issuer)
    now = runtime.clock.now()
    access = company_access(db_session.connection(), presented, now)
    check_sender(db_session, access, presented, now)
    return access


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
