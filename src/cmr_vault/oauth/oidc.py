"""OpenID Connect Core 1.0 on authlib's own code-flow extension (`authlib.oidc.core`).

A token response for a grant that includes `openid` carries an id_token: signed with the
vault's current key for the company's algorithm (`oauth.jwks`), for the company alone (`aud`),
naming the customer by the company's pairwise subject (`sub`, OpenID Connect Core §8.1), with
the request's `nonce` (a nonce is accepted once per company) and the time the customer signed
in (`auth_time`). It carries nothing else about the customer: profile fields leave the vault
only through reads that state a purpose the customer agreed to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oidc.core import OpenIDCode, UserInfo

from cmr_vault.consent import service as consent_service
from cmr_vault.oauth import jwks
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.jwks import Key

MAX_NONCE = 255

if TYPE_CHECKING:
    from cmr_vault.oauth.server import GrantHolder, VaultAuthorizationServer, VaultClient


def algorithm_for(server: VaultAuthorizationServer, client: VaultClient) -> str:
    """The company's registered id_token algorithm, or the vault's default."""
    return client.row.id_token_alg or jwks.default_algorithm(server.keyring)


class VaultOpenIDCode(OpenIDCode):
    """authlib's OpenID Connect code extension, answered from the vault's keys and grants."""

    def __init__(self, server: VaultAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def validate_openid_authorization_request(self, grant: Any, redirect_uri: str) -> None:
        # The nonce is stored with the code; one longer than its column is refused up front.
        if len(grant.request.payload.data.get("nonce", "")) > MAX_NONCE:
            raise InvalidRequestError(
                f"nonce may be at most {MAX_NONCE} characters.", redirect_uri=redirect_uri
            )
        super().validate_openid_authorization_request(grant, redirect_uri)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return oauth_service.nonce_was_used(
            self.server.session, client_id=request.payload.client_id or "", nonce=nonce
        )

    def get_client_algorithm(self, client: VaultClient) -> str:
        return algorithm_for(self.server, client)

    def get_encode_header(self, client: VaultClient) -> dict[str, str]:
        alg = self.get_client_algorithm(client)
        kid, _ = jwks.signing_key(self.server.keyring, alg)
        return {"alg": alg, "kid": kid, "typ": "JWT"}

    def resolve_client_private_key(self, client: VaultClient) -> Key:
        return jwks.signing_key(self.server.keyring, self.get_client_algorithm(client))[1]

    def get_client_claims(self, client: VaultClient) -> dict[str, Any]:
        # The vault's clock, not the process clock authlib would read.
        now = int(self.server.clock.now().timestamp())
        return {
            "iss": self.server.issuer,
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + int(jwks.ID_TOKEN_LIFETIME.total_seconds()),
        }

    def generate_user_info(self, user: GrantHolder, scope: str) -> UserInfo:
        grant = consent_service.get_grant(self.server.session, user.grant_id)
        if grant is None:  # the code grant checked it a moment ago, in this transaction
            raise LookupError(f"grant {user.grant_id} vanished while issuing its id_token")
        return UserInfo(sub=grant.pairwise_subject)
