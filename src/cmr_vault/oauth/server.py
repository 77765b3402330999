"""authlib's authorization server, adapted to Litestar and hardened to OAuth 2.1.

authlib ships no Litestar integration, so this module gives it what its framework-neutral core
needs: a request object built once from the already-read query and form (keeping every value
of a repeated parameter, so duplicates are refused), a response that lets the RFC 9207
extension set `location`, and models answering authlib's mixin questions from our tables.

Where authlib's defaults are weaker than OAuth 2.1 (see checklist §0) we tighten them:
PKCE with S256 is required of every client at /authorize; codes are spent atomically and a
replay revokes what the first redemption issued; refresh tokens rotate, and reuse of a spent
one revokes the whole token family and marks the grant compromised.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
    RefreshTokenGrant,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.consent.service import ConsentContext
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.crypto.keyring import Keyring
from cmr_vault.errors import ValidationFailed
from cmr_vault.oauth import authorization_details as rar
from cmr_vault.oauth import dpop, par
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import AuthorizationCode, ClientStatus, OAuthClient, OAuthToken
from cmr_vault.oauth.oidc import VaultOpenIDCode
from cmr_vault.oauth.scopes import all_scopes, parse_scopes

Pairs = list[tuple[str, str]]
# The two visible characters an error_description may not carry (RFC 6749 §4.1.2.1);
# authlib raises ValueError rather than send them, so nothing we echo may hold them.
NOT_IN_DESCRIPTIONS = {ord('"'): "%22", ord("\\"): "%5C"}


def description_of(text: str) -> str:
    """`text` fit for an error_description: the characters it may not carry percent-encoded."""
    return text.translate(NOT_IN_DESCRIPTIONS)


class CodeOnlyError(UnsupportedResponseTypeError):
    """unsupported_response_type, worded without echoing the request's response_type."""

    def get_error_description(self) -> str:
        return "Only response_type=code is supported."


class VaultPayload(OAuth2Payload):
    """The OAuth parameters of one request, every value of a repeated parameter kept.

    A parameter sent with an empty value counts as absent (OAuth 2.1 §3.1).
    """

    def __init__(self, pairs: Pairs) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            if value != "":
                self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist

    def set_scope(self, names: list[str]) -> None:
        """Replace the requested scope (RFC 9396 details stand for scopes of their own)."""
        scope = " ".join(dict.fromkeys(names))
        self._data["scope"] = scope
        self._datalist["scope"] = [scope]


class VaultRequest(OAuth2Request):
    """An authlib request built once, after the body was read; authlib asks for it many times."""

    def __init__(self, *, method: str, uri: str, headers: Mapping[str, str], params: Pairs) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = VaultPayload(params)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data

    def with_params(self, params: Pairs) -> VaultRequest:
        """The same request carrying other parameters (a pushed request, RFC 9126)."""
        return VaultRequest(method=self.method, uri=self.uri, headers=self.headers,
                            params=params)


@dataclass
class OAuthResponse:
    """What authlib answers; `location` is settable because the RFC 9207 hook rewrites it."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None


@dataclass(frozen=True)
class GrantHolder:
    """The resource owner authlib passes around: a customer's grant to this company."""

    account_id: str
    grant_id: str
    scope: str
    auth_time: datetime | None = None  # when the customer signed in (OpenID Connect)


class VaultClient(ClientMixin):
    """authlib's view of a registered company."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.redirect_uris: list[str] = json.loads(row.redirect_uris)
        self.allowed_scopes: set[str] = set(json.loads(row.allowed_scopes))
        self.public = row.secret_hash is None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        # With several registered URIs the request must name one (OAuth 2.1 §4.1.1).
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # Refuse outright (invalid_scope) rather than silently narrowing: the consent screen
        # must never be shown for scopes the company may not ask for.
        requested = (scope or "").split()
        if not requested or not set(requested) <= self.allowed_scopes:
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(
            oauth_service.redirect_uri_matches(r, redirect_uri, public=self.public)
            for r in self.redirect_uris
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return oauth_service.client_secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class IssuedCode:
    """authlib's view of a stored authorization code."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int | None:
        return int(self.row.auth_time.timestamp()) if self.row.auth_time else None

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class IssuedToken:
    """authlib's view of a stored token (for refresh, revocation and introspection)."""

    def __init__(self, row: OAuthToken, kind: str, server: VaultAuthorizationServer,
                 grant: Grant | None = None) -> None:
        self.row = row
        self.kind = kind
        self.server = server
        self._grant = grant

    def grant(self) -> Grant | None:
        """The token's grant: loaded with the token when it was found by `find_bearer`."""
        if self._grant is None:
            self._grant = consent_service.get_grant(self.server.session, self.row.grant_id)
        return self._grant

    def check_client(self, client: VaultClient) -> bool:
        return bool(secrets.compare_digest(self.row.client_id, client.get_client_id()))

    def get_scope(self) -> str:
        return self.row.refresh_scope if self.kind == "refresh_token" else self.row.scope

    def get_expires_in(self) -> int:
        return int((self.row.access_expires_at - self.row.issued_at).total_seconds())

    def is_expired(self) -> bool:
        now = self.server.clock.now()
        if self.kind == "refresh_token":
            return not oauth_service.refresh_token_is_live(self.row, now)
        return self.row.access_expires_at <= now

    def is_revoked(self) -> bool:
        grant = self.grant()
        return (
            self.row.revoked_at is not None
            or grant is None
            or not consent_service.is_usable(grant, self.server.clock.now())
        )

    def get_user(self) -> None:
        return None

    def get_client(self) -> VaultClient | None:
        return self.server.query_client(self.row.client_id)


class S256Challenge(CodeChallenge):
    """PKCE as OAuth 2.1 wants it: S256 only, required of every client, checked at /authorize."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class VaultCodeGrant(AuthorizationCodeGrant):
    """Authorization code grant with atomic, replay-detecting redemption."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        server: VaultAuthorizationServer = self.server
        holder: GrantHolder = request.user
        data = request.payload.data
        oauth_service.save_code(
            server.session,
            clock=server.clock,
            code=code,
            client_id=request.client.get_client_id(),
            grant_id=holder.grant_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=holder.scope,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            dpop_jkt=data.get("dpop_jkt"),
            nonce=data.get("nonce"),
            auth_time=holder.auth_time,
        )

    def query_authorization_code(self, code: str, client: VaultClient) -> IssuedCode | None:
        row = oauth_service.find_code(
            self.server.session,
            clock=self.server.clock,
            code=code,
            client_id=client.get_client_id(),
        )
        return IssuedCode(row) if row else None

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Spent codes are kept (marked used) so that a replay can be recognised."""

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Any:
        par.spend_before_answering(self)
        return super().create_authorization_response(redirect_uri, grant_user)

    def authenticate_user(self, authorization_code: IssuedCode) -> GrantHolder | None:
        # Runs after client authentication and PKCE, so only a caller holding the verifier
        # can trigger the replay response (OAuth 2.1 "Reuse of Authorization Codes").
        server: VaultAuthorizationServer = self.server
        row = authorization_code.row
        if not oauth_service.spend_code(server.session, clock=server.clock, code=row):
            revoked = oauth_service.revoke_family(server.session, clock=server.clock,
                                                  family=row.code_hash)
            grant = consent_service.get_grant(server.session, row.grant_id)
            if grant is not None:
                server.audit("code.replayed", grant.account_id, row.client_id, grant.id,
                             {"tokens_revoked": revoked}, outcome="denied")
            raise InvalidGrantError("This code was already used; its tokens are revoked.")
        grant = consent_service.get_grant(server.session, row.grant_id)
        if grant is None or not consent_service.is_usable(grant, server.clock.now()):
            raise InvalidGrantError("The customer's consent is no longer in force.")
        self.request.family = row.code_hash
        return GrantHolder(grant.account_id, grant.id, row.scope)


class RotatingRefreshGrant(RefreshTokenGrant):
    """Refresh with rotation; a spent refresh token coming back revokes its whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        server: VaultAuthorizationServer = self.server
        row = oauth_service.find_refresh_token(server.session, refresh_token)
        if row is None or row.client_id != self.request.client.get_client_id():
            return None
        if row.refreshed_at is not None and row.revoked_at is None:
            server.compromised(row)
            return None
        if not oauth_service.refresh_token_is_live(row, server.clock.now()):
            return None
        grant = consent_service.get_grant(server.session, row.grant_id)
        if grant is None or not consent_service.is_usable(grant, server.clock.now()):
            return None
        return IssuedToken(row, "refresh_token", server)

    def authenticate_user(self, refresh_token: IssuedToken) -> GrantHolder | None:
        server: VaultAuthorizationServer = self.server
        row = refresh_token.row
        if not oauth_service.spend_refresh_token(server.session, clock=server.clock, token=row):
            server.compromised(row)
            raise InvalidGrantError("This refresh token was already used.")
        grant = consent_service.get_grant(server.session, row.grant_id)
        assert grant is not None  # checked in authenticate_refresh_token
        self.request.family = row.family
        self.request.refresh_scope = row.refresh_scope
        return GrantHolder(grant.account_id, grant.id, row.refresh_scope)

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        """Spent already in authenticate_user, atomically."""


def _check_token_present(request: OAuth2Request) -> None:
    """RFC 7009 §2.1 and RFC 7662 §2.1: `token` is required; `token_type_hint` is only a hint.

    Every kind of token is searched whatever the hint says, so an unknown hint is ignored
    rather than refused (authlib answers it with a 401 that RFC 6749 keeps for
    invalid_client, and leaves the token live).
    """
    if "token" not in request.form:
        raise InvalidRequestError("The token parameter is required.")


class VaultRevocation(RevocationEndpoint):
    """RFC 7009: revoking either token of a family revokes the whole family (§2.1).

    Another company's token is answered exactly like an unknown one (200, nothing changes), so
    the endpoint cannot be used to learn which tokens are live.
    """

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def check_params(self, request: OAuth2Request, client: VaultClient) -> None:
        _check_token_present(request)

    def authenticate_token(self, request: OAuth2Request, client: VaultClient) -> IssuedToken | None:
        self.check_params(request, client)
        found = self.query_token(request.form["token"], None)
        return found if found is not None and found.check_client(client) else None

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        found = oauth_service.find_any_token(self.server.session, token_string)
        return IssuedToken(found[0], found[1], self.server) if found else None

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        server: VaultAuthorizationServer = self.server
        revoked = oauth_service.revoke_family(server.session, clock=server.clock,
                                              family=token.row.family)
        grant = consent_service.get_grant(server.session, token.row.grant_id)
        if grant is not None:
            server.audit("token.revoked", grant.account_id, token.row.client_id, grant.id,
                         {"tokens_revoked": revoked, "presented": token.kind})


class VaultIntrospection(IntrospectionEndpoint):
    """RFC 7662, for the company's own tokens only: no caller may scan another's tokens."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, request: OAuth2Request, client: VaultClient) -> None:
        _check_token_present(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        # An access token comes with its grant in one query (the common case by far).
        bearer = oauth_service.find_bearer(self.server.session.connection(), token_string)
        if bearer is not None:
            return IssuedToken(bearer[0], "access_token", self.server, grant=bearer[1])
        row = oauth_service.find_refresh_token(self.server.session, token_string)
        return IssuedToken(row, "refresh_token", self.server) if row is not None else None

    def check_permission(
        self, token: IssuedToken, client: VaultClient, request: OAuth2Request
    ) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        server: VaultAuthorizationServer = self.server
        grant = token.grant()
        expires = (
            token.row.refresh_expires_at
            if token.kind == "refresh_token"
            else token.row.access_expires_at
        )
        details = token.row.authorization_details
        return {
            "active": True,
            "scope": token.get_scope(),
            "client_id": token.row.client_id,
            "token_type": ("refresh_token" if token.kind == "refresh_token"
                           else "DPoP" if token.row.dpop_jkt else "Bearer"),
            **dpop.introspection_claims(token.row),
            **({"authorization_details": json.loads(details)}
               if details and token.kind == "access_token" else {}),
            "exp": int(expires.timestamp()) if expires else None,
            "iat": int(token.row.issued_at.timestamp()),
            "sub": grant.pairwise_subject if grant else None,
            "aud": server.issuer + "/api/v1",
            "iss": server.issuer,
        }


class VaultIssuer(IssuerParameter):
    """RFC 9207: `iss` on every authorization response, success or error."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


def _token_value(*_: Any, **__: Any) -> str:
    return secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG


class VaultAuthorizationServer(AuthorizationServer):
    """One per request: it carries that request's database session and clock."""

    def __init__(self, *, session: Session, consent: ConsentContext, issuer: str,
                 keyring: Keyring) -> None:
        super().__init__(scopes_supported=all_scopes())
        self.session = session
        self.consent = consent
        self.clock = consent.clock
        self.pseudonym_key = consent.pseudonym_key
        self.issuer = issuer
        self.keyring = keyring
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                _token_value,
                _token_value,
                lambda client, grant_type: int(oauth_service.ACCESS_LIFETIME.total_seconds()),
            ),
        )
        self.register_grant(VaultCodeGrant, [
            S256Challenge(required=True), VaultOpenIDCode(self), par.PushedRequestPolicy(),
            rar.RichAuthorizationRequest(), rar.DetailsInTokens(), dpop.DPoPTokenBinding()])
        self.register_grant(RotatingRefreshGrant, [rar.DetailsInTokens(),
                                                   dpop.DPoPTokenBinding()])
        self.register_endpoint(par.PushedAuthorizationEndpoint)
        self.register_endpoint(VaultRevocation)
        self.register_endpoint(VaultIntrospection)
        self.register_extension(VaultIssuer(issuer))

    def validate_requested_scope(self, scope: str | None) -> None:
        """Every scope must have one of the vault's shapes; `intents.<topic>` is open-ended,
        so a fixed list (authlib's default check) cannot hold them all."""
        try:
            parse_scopes(scope or "")
        except ValidationFailed as exc:
            why = exc.problems.get("scope", exc.detail)
            raise InvalidScopeError(description=description_of(why)) from exc

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        """The code grant, or an error that never echoes what the request sent.

        authlib puts the request's redirect_uri and response_type into its error descriptions
        and raises ValueError (a 500) when they hold `"` or `\\`. Neither character may appear
        in a URI (RFC 3986), so such a redirect URI is unregistered: an error page, never a
        redirect (RFC 6749 §4.1.2.1). Any other response type is sent back as an error.
        """
        payload = request.payload
        if set(payload.redirect_uri or "") & {'"', "\\"}:
            raise InvalidRequestError("The redirect URI is not registered for this company.")
        if payload.response_type != "code":
            raise CodeOnlyError(None, redirect_uri=self._error_redirect_uri(request))
        return super().get_authorization_grant(request)

    def _error_redirect_uri(self, request: OAuth2Request) -> str | None:
        """Where an error may be sent: only a registered URI of a known company (§4.1.2.1)."""
        client = self.query_client(request.payload.client_id or "")
        if client is None:
            return None
        requested = request.payload.redirect_uri
        if requested:
            return requested if client.check_redirect_uri(requested) else None
        return client.get_default_redirect_uri()

    def query_client(self, client_id: str) -> VaultClient | None:
        row = self.session.get(OAuthClient, client_id)
        if row is None or row.status != ClientStatus.APPROVED:
            return None
        return VaultClient(row)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        holder: GrantHolder = request.user
        client_id = request.client.get_client_id()
        # authlib sends back the dict it hands us: the binding and details go in here.
        jkt = getattr(request, "dpop_jkt", None)
        # Never more than the token's own scope (a refresh may have narrowed it).
        details = rar.to_json(rar.approved(getattr(request, "authorization_details", []),
                                           token["scope"].split(),
                                           json.loads(request.client.row.notice)))
        if jkt:
            token["token_type"] = "DPoP"  # noqa: S105 (a token type, not a secret)
        if details:
            token["authorization_details"] = json.loads(details)
        oauth_service.save_token(
            self.session, clock=self.clock, access_token=token["access_token"],
            refresh_token=token.get("refresh_token"), client_id=client_id,
            grant_id=holder.grant_id, family=request.family, scope=token["scope"],
            refresh_scope=getattr(request, "refresh_scope", token["scope"]),
            dpop_jkt=jkt, authorization_details=details,
        )
        self.audit("token.issued", holder.account_id, client_id, holder.grant_id,
                   {"grant_type": request.payload.grant_type, "scope": token["scope"]})

    def audit(self, action: str, account_id: str, client_id: str, grant_id: str,
              details: dict[str, Any] | None = None, outcome: str = "ok") -> None:
        """Token events go to the audit log under the customer's pseudonym."""
        audit_service.record(self.session, clock=self.clock, event=audit_service.AuditEvent(
            actor=f"company:{client_id}", action=action,
            subject=subject_pseudonym(self.pseudonym_key, account_id),
            resource=f"grant:{grant_id}", outcome=outcome,
            details={"company": client_id, **(details or {})},
        ))

    def compromised(self, row: OAuthToken) -> None:
        """A spent refresh token came back: revoke its family and stop the grant."""
        oauth_service.revoke_family(self.session, clock=self.clock, family=row.family)
        grant = consent_service.get_grant(self.session, row.grant_id)
        if grant is not None:
            self.audit("token.reuse_detected", grant.account_id, row.client_id, grant.id,
                       outcome="denied")
        consent_service.mark_compromised(self.session, self.consent, grant_id=row.grant_id)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, OAuth2Request):
            raise TypeError("build a VaultRequest first (the body must be read asynchronously)")
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResponse:
        header_map = dict(headers or [])
        return OAuthResponse(status, body, header_map, header_map.get("Location"))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signals carry nothing the audit log does not get from the controllers."""


def metadata(issuer: str) -> dict[str, Any]:
    """RFC 8414 server metadata, advertising only what is supported."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": all_scopes(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "pushed_authorization_request_endpoint": f"{issuer}/oauth/par",
        "require_pushed_authorization_requests": False,
        "dpop_signing_alg_values_supported": list(dpop.SIGNING_ALGORITHMS),
        "authorization_details_types_supported": [rar.DETAILS_TYPE],
        "service_documentation": f"{issuer}/schema",
    }
