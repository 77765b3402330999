"""Discovery documents: OpenID Connect Discovery 1.0 and RFC 9728 protected-resource metadata.

`/.well-known/openid-configuration` is the RFC 8414 server metadata plus what OpenID Connect
adds (userinfo, jwks_uri, pairwise subjects, id_token algorithms). The company API is a
protected resource (RFC 9728): its metadata names the vault as its authorization server, so a
client that only met a 401 (whose `WWW-Authenticate` names the metadata) finds where to get a
token.
"""

from __future__ import annotations

from litestar import get

from cmr_vault.deps import RuntimeDep
from cmr_vault.oauth import jwks
from cmr_vault.oauth.schemas import OpenIDConfiguration, ProtectedResourceMetadata
from cmr_vault.oauth.scopes import all_scopes
from cmr_vault.oauth.server import metadata

# RFC 9728 §3.1: the metadata of resource `https://host/api/v1` is at this path plus `/api/v1`.
PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"
API_PATH = "/api/v1"


def openid_configuration(issuer: str, id_token_algorithms: list[str]) -> OpenIDConfiguration:
    """OpenID Connect Discovery 1.0 §3, advertising only what the vault does."""
    return {
        **metadata(issuer),
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": id_token_algorithms,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        # Discovery's default for this one is true: say that request_uri is not taken.
        "request_uri_parameter_supported": False,
    }


def resource_metadata_url(issuer: str) -> str:
    """Where the company API's RFC 9728 metadata is (named in its 401 challenges)."""
    return f"{issuer}{PROTECTED_RESOURCE_PATH}{API_PATH}"


def protected_resource(issuer: str, resource: str) -> ProtectedResourceMetadata:
    """RFC 9728 §2 metadata of one resource served by the vault."""
    return {
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": all_scopes(),
        "bearer_methods_supported": ["header"],
        "resource_name": "CMR Vault company API",
        "resource_documentation": f"{issuer}/schema",
    }


@get("/.well-known/openid-configuration", sync_to_thread=False, tags=["oauth"])
def openid_configuration_document(runtime: RuntimeDep) -> OpenIDConfiguration:
    """OpenID Connect Discovery 1.0 provider metadata."""
    return openid_configuration(runtime.settings.issuer, jwks.supported_algorithms(runtime.keyring))


@get(PROTECTED_RESOURCE_PATH + API_PATH, sync_to_thread=False, tags=["oauth"])
def api_resource_metadata(runtime: RuntimeDep) -> ProtectedResourceMetadata:
    """RFC 9728 metadata of the company API (`resource` is its base URL)."""
    issuer = runtime.settings.issuer
    return protected_resource(issuer, issuer + API_PATH)


@get(PROTECTED_RESOURCE_PATH, sync_to_thread=False, tags=["oauth"])
def vault_resource_metadata(runtime: RuntimeDep) -> ProtectedResourceMetadata:
    """RFC 9728 metadata of the vault as a whole (`resource` is its origin)."""
    issuer = runtime.settings.issuer
    return protected_resource(issuer, issuer)
