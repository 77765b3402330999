"""Registered companies (OAuth clients), authorization codes and tokens.

Secrets, codes and tokens are stored only as SHA-256 hashes: they are long random strings, so a
fast hash is enough to make a stolen table useless, and lookups stay a single indexed equality.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, ForeignKey, String, Text, false
from sqlmodel import Field, SQLModel

from cmr_vault.db.types import utc_column


class ClientStatus(StrEnum):
    """Only approved companies can ask customers for anything."""

    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"


class OAuthClient(SQLModel, table=True):
    """A company registered by the operator, with its privacy notice.

    `notice` is JSON: {scope: [purposes declared for it]}; `notice_version` grows each time the
    notice changes, and every consent record names the version the customer saw.
    """

    __tablename__ = "oauth_client"

    client_id: str = Field(primary_key=True, max_length=48)
    name: str = Field(max_length=120)
    description: str = Field(sa_column=Column(Text, nullable=False))
    homepage: str = Field(max_length=500)
    privacy_policy_url: str = Field(max_length=500)
    redirect_uris: str = Field(sa_column=Column(Text, nullable=False))
    allowed_scopes: str = Field(sa_column=Column(Text, nullable=False))
    notice: str = Field(sa_column=Column(Text, nullable=False))
    notice_version: int = 1
    secret_hash: str | None = Field(default=None, max_length=64)
    # FAPI-style hardening a company may be held to (RFC 9126 §5, RFC 9449 §5).
    require_par: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    require_dpop: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    status: ClientStatus = Field(sa_column=Column(String(16), nullable=False, index=True))
    created_at: datetime = Field(sa_column=utc_column())
    # OpenID Connect: the host of a verified sector_identifier_uri (its pairwise subjects are
    # shared with the sector's other registrations), and the id_token algorithm it registered.
    sector_identifier: str | None = Field(default=None, max_length=255)
    id_token_alg: str | None = Field(default=None, max_length=16)


class AuthorizationCode(SQLModel, table=True):
    """A code on its way back to the company; spent once, then kept to detect replays."""

    __tablename__ = "authorization_code"

    code_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(
        sa_column=Column(String(48), ForeignKey("oauth_client.client_id"), nullable=False)
    )
    grant_id: str = Field(
        sa_column=Column(String(32), ForeignKey("grant.id", ondelete="CASCADE"), nullable=False)
    )
    redirect_uri: str = Field(max_length=500)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    code_challenge: str = Field(max_length=128)
    code_challenge_method: str = Field(max_length=8)
    # The DPoP key the company named at /authorize (RFC 9449 §10): only it may redeem the code.
    dpop_jkt: str | None = Field(default=None, max_length=43)
    expires_at: datetime = Field(sa_column=utc_column())
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # OpenID Connect: echoed in the id_token (and never accepted twice), and when the customer
    # signed in (`auth_time`).
    nonce: str | None = Field(default=None, max_length=255)
    auth_time: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class PushedAuthorizationRequest(SQLModel, table=True):
    """An authorization request a company pushed (RFC 9126), waiting for the customer.

    Keyed by the hash of its `request_uri`; `params` are the request's parameters as JSON
    pairs (no personal data: scopes, state, PKCE challenge). Spent once, then kept until it
    expires so that a second use is recognised and refused.
    """

    __tablename__ = "pushed_authorization_request"

    reference_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(
        sa_column=Column(String(48), ForeignKey("oauth_client.client_id"), nullable=False)
    )
    params: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = Field(sa_column=utc_column(index=True))
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class DPoPProofSeen(SQLModel, table=True):
    """A DPoP proof already accepted (RFC 9449 §11.1), remembered until its `iat` window ends.

    The primary key is a hash of the key thumbprint and the proof's `jti`: the database's
    uniqueness refuses a replay whichever worker sees it.
    """

    __tablename__ = "dpop_proof_seen"

    proof_hash: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=utc_column(index=True))


class OAuthToken(SQLModel, table=True):
    """An access token and its refresh token, issued together.

    `family` is the authorization code's hash: every token descended from one code by refresh
    shares it, so a replayed code or refresh token revokes the whole line at once.
    """

    __tablename__ = "oauth_token"

    id: str = Field(primary_key=True, max_length=32)
    access_hash: str = Field(max_length=64, unique=True)
    refresh_hash: str | None = Field(default=None, max_length=64, unique=True)
    client_id: str = Field(
        sa_column=Column(
            String(48), ForeignKey("oauth_client.client_id"), nullable=False, index=True
        )
    )
    grant_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("grant.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    family: str = Field(max_length=64, index=True)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    refresh_scope: str = Field(sa_column=Column(Text, nullable=False))
    # The key the tokens are bound to (RFC 9449 §6, a JWK SHA-256 thumbprint), if any, and
    # the RFC 9396 authorization details the access token carries (JSON), if any.
    dpop_jkt: str | None = Field(default=None, max_length=43)
    authorization_details: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    issued_at: datetime = Field(sa_column=utc_column())
    access_expires_at: datetime = Field(sa_column=utc_column())
    refresh_expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    refreshed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
