"""The shapes of the OAuth side's JSON answers, for the OpenAPI document and its readers."""

from __future__ import annotations

from typing import TypedDict


class ServerMetadata(TypedDict):
    """RFC 8414 authorization server metadata, as the vault fills it in."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    scopes_supported: list[str]
    response_types_supported: list[str]
    response_modes_supported: list[str]
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    code_challenge_methods_supported: list[str]
    authorization_response_iss_parameter_supported: bool
    pushed_authorization_request_endpoint: str
    require_pushed_authorization_requests: bool
    dpop_signing_alg_values_supported: list[str]
    authorization_details_types_supported: list[str]
    service_documentation: str


class OpenIDConfiguration(ServerMetadata):
    """OpenID Connect Discovery 1.0 §3: the server metadata and what OpenID Connect adds."""

    userinfo_endpoint: str
    jwks_uri: str
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]
    claims_parameter_supported: bool
    request_parameter_supported: bool
    request_uri_parameter_supported: bool


class ProtectedResourceMetadata(TypedDict):
    """RFC 9728 §2 metadata of a protected resource."""

    resource: str
    authorization_servers: list[str]
    scopes_supported: list[str]
    bearer_methods_supported: list[str]
    resource_name: str
    resource_documentation: str


class UserInfoDocument(TypedDict):
    """OpenID Connect userinfo: the company's pairwise subject for the customer."""

    sub: str


class ClientDocument(TypedDict):
    """A company as the admin API shows it (never its secret hash)."""

    client_id: str
    name: str
    description: str
    homepage: str
    privacy_policy_url: str
    redirect_uris: list[str]
    notice: dict[str, list[str]]
    notice_version: int
    status: str
    public: bool
    created_at: str
    sector_identifier: str | None
    id_token_signed_response_alg: str | None


class RegisteredClient(ClientDocument):
    """A company just registered, with its secret (None for a public client), shown once."""

    client_secret: str | None


class ClientList(TypedDict):
    """Every registered company."""

    clients: list[ClientDocument]
