"""RFC 9126 Pushed Authorization Requests: the company sends its request straight to the vault.

The company POSTs the parameters it would have put in the /authorize URL, authenticated as
itself; the vault validates them exactly as /authorize would and answers with a short-lived
`request_uri`. The customer's browser then carries only `client_id` and `request_uri`, so the
request cannot be read or altered on the way, and it is known to come from the company.

A `request_uri` is bound to its company, lives LIFETIME, and is spent once, when the customer
decides (allow or deny); the screens before that may be shown again (sign-in, a problem on the
consent form). A company registered with `require_par` can start a flow no other way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.endpoint import Endpoint, EndpointRequest
from sqlalchemy import delete, update
from sqlmodel import Session, col

from cmr_vault.clock import Clock
from cmr_vault.errors import DomainError
from cmr_vault.oauth.models import PushedAuthorizationRequest

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME = timedelta(seconds=90)  # long enough to sign in; RFC 9126 §2.2 suggests 5 to 600 s
ENDPOINT_NAME = "pushed_authorization"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

Pairs = list[tuple[str, str]]


class PushedRequestRefused(DomainError):
    """A `request_uri` that is unknown, expired, spent or another company's: an error page,
    never a redirect, since the redirect URI it would name cannot be trusted."""


def _reference_hash(request_uri: str) -> str:
    return hashlib.sha256(request_uri.encode()).hexdigest()


def resolve(session: Session, *, clock: Clock, query: Pairs) -> tuple[Pairs, str | None]:
    """The authorization request a browser brings: its own query, or the pushed one it names.

    Returns the parameters and, for a pushed request, the reference to spend when the
    customer decides. Parameters beside `client_id` and `request_uri` are ignored (§4).
    """
    uris = [value for key, value in query if key == "request_uri"]
    if not uris:
        return query, None
    client_ids = [value for key, value in query if key == "client_id"]
    if len(uris) > 1 or len(client_ids) != 1:
        raise PushedRequestRefused("Send one request_uri with the client_id it was issued to.")
    row = session.get(PushedAuthorizationRequest, _reference_hash(uris[0]))
    if (
        row is None
        or not hmac.compare_digest(row.client_id.encode(), client_ids[0].encode())
        or row.expires_at <= clock.now()
        or row.used_at is not None
    ):
        raise PushedRequestRefused(
            "This authorization request is unknown, has expired or was already used. Go back "
            "to the company's site and start again."
        )
    return [(key, value) for key, value in json.loads(row.params)], row.reference_hash


def spend(session: Session, *, clock: Clock, reference_hash: str) -> bool:
    """Mark a pushed request used; True only for the first caller (one conditional UPDATE)."""
    result = session.execute(
        update(PushedAuthorizationRequest)
        .where(col(PushedAuthorizationRequest.reference_hash) == reference_hash)
        .where(col(PushedAuthorizationRequest.used_at).is_(None))
        .where(col(PushedAuthorizationRequest.expires_at) > clock.now())
        .values(used_at=clock.now())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def spend_before_answering(grant: Any) -> None:
    """Called as the customer's decision is answered: a pushed request answers only once."""
    server, request = grant.server, grant.request
    reference = getattr(request, "pushed_reference", None)
    if reference is not None and not spend(
        server.session, clock=server.clock, reference_hash=reference
    ):
        raise InvalidRequestError("This pushed authorization request was already used.")


class PushedRequestPolicy:
    """An authlib grant extension: a company held to PAR may not send its request in the URL."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("before_validate_authorization_request_payload", self.check)

    def check(self, grant: Any, _redirect_uri: str) -> None:
        request = grant.request
        pushed = getattr(request, "pushed_reference", None) or getattr(request, "pushing", False)
        if request.client.row.require_par and not pushed:
            raise InvalidRequestError(
                "This company must push its authorization requests (RFC 9126)."
            )


class PushedAuthorizationEndpoint(Endpoint):
    """POST /oauth/par (RFC 9126 §2): validate the request as /authorize would, then store it.

    Errors come back as JSON, never as a redirect: the company is calling directly.
    """

    ENDPOINT_NAME = ENDPOINT_NAME

    def validate_request(self, request: Any) -> EndpointRequest:
        client = self.server.authenticate_client(request, CLIENT_AUTH_METHODS, ENDPOINT_NAME)
        # OAuth parameters are visible ASCII (RFC 6749 Appendix A), as /authorize checks too:
        # nothing else may reach an error description.
        if not all(
            32 <= ord(c) < 127 for pair in request.payload.data.items() for c in "".join(pair)
        ):
            raise InvalidRequestError("The request holds characters OAuth does not allow.")
        pairs = [
            (key, value)
            for key, values in request.payload.datalist.items()
            for value in values
            if key != "client_secret"
        ]
        if "request_uri" in request.payload.data:
            raise InvalidRequestError("request_uri may not be pushed (RFC 9126 section 2.1).")
        named = request.payload.data.get("client_id")
        if named is not None and named != client.get_client_id():
            raise InvalidRequestError("client_id differs from the authenticated company.")
        if named is None:
            pairs.append(("client_id", client.get_client_id()))
        authorization = request.with_params(pairs)
        authorization.pushing = True
        authorization.pushed_params = pairs
        try:
            self.server.get_consent_grant(authorization, end_user=None)
        except OAuth2Error as error:
            error.redirect_uri = None
            raise
        return EndpointRequest(request=authorization, client=client)

    def create_response(self, validated_request: EndpointRequest) -> tuple[int, Any, list[Any]]:
        server = self.server
        now = server.clock.now()
        session: Session = server.session
        session.execute(
            delete(PushedAuthorizationRequest).where(
                col(PushedAuthorizationRequest.expires_at) <= now
            )
        )
        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        params = validated_request.request.pushed_params
        session.add(
            PushedAuthorizationRequest(
                reference_hash=_reference_hash(request_uri),
                client_id=validated_request.client.get_client_id(),
                params=json.dumps(params),
                expires_at=now + LIFETIME,
            )
        )
        session.flush()
        body = {"request_uri": request_uri, "expires_in": int(LIFETIME.total_seconds())}
        return 201, body, default_json_headers
