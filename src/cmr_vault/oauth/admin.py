"""The operator's admin API: register, list, approve and suspend companies.

Authenticated with one operator token (`Authorization: Bearer …`) whose SHA-256 is configured
as CMR_VAULT_ADMIN_TOKEN_SHA256; the token itself is never stored. Without that setting the
API is off. Every change is written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Annotated, Any, TypeAlias

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from cmr_vault.audit import service as audit_service
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import Forbidden, Unauthenticated
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import ClientStatus, OAuthClient
from cmr_vault.oauth.schemas import ClientDocument, ClientList, RegisteredClient
from cmr_vault.oauth.scopes import Notice
from cmr_vault.patterns import HTTPS_REDIRECT, HTTPS_URL, NATIVE_REDIRECT, NOT_BLANK
from cmr_vault.web.openapi import OPERATOR_TOKEN

Operator: TypeAlias = NamedDependency[str]


# A confidential client comes back over https only; a public (native) one may also use
# the app forms of NATIVE_REDIRECT.
_REDIRECTS_BY_KIND = {
    "if": {"properties": {"public": {"const": True}}, "required": ["public"]},
    "then": {"properties": {"redirect_uris": {"items": {"pattern": NATIVE_REDIRECT}}}},
    "else": {"properties": {"redirect_uris": {"items": {"pattern": HTTPS_REDIRECT}}}},
}


class ClientRegistrationBody(BaseModel):
    """A company as the operator registers it."""

    model_config = ConfigDict(json_schema_extra=_REDIRECTS_BY_KIND)

    name: str = Field(min_length=1, max_length=120, pattern=NOT_BLANK)
    description: str = Field(default="", max_length=2000)
    homepage: str = Field(max_length=500, pattern=HTTPS_URL)
    privacy_policy_url: str = Field(max_length=500, pattern=HTTPS_URL)
    redirect_uris: list[Annotated[str, StringConstraints(max_length=500,
                                                         pattern=NATIVE_REDIRECT)]] = Field(
        min_length=1, max_length=10)
    notice: Notice
    public: bool = False
    approved: bool = True

    @field_validator("public", "approved", mode="before")
    @classmethod
    def _only_true_or_false(cls, value: object) -> object:
        """0 or "no" must not be read as a choice the operator did not make."""
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value

    @model_validator(mode="after")
    def _https_unless_native(self) -> ClientRegistrationBody:
        """The schema's if/then, enforced: a confidential client comes back over https only."""
        if not self.public and any(not re.match(HTTPS_REDIRECT, uri)
                                   for uri in self.redirect_uris):
            raise ValueError("redirect_uris: a confidential client's redirect URIs are https")
        return self


class StatusBody(BaseModel):
    """The new status of a company."""

    status: ClientStatus


def provide_operator(request: Request[Any, Any, Any], runtime: RuntimeDep) -> str:
    """Check the operator's bearer token in constant time; 'operator:api' when it matches."""
    configured = runtime.settings.admin_token_sha256.strip().lower()
    if not configured:
        raise Forbidden("The admin API is off: set CMR_VAULT_ADMIN_TOKEN_SHA256 to enable it.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    presented = hashlib.sha256(token.strip().encode()).hexdigest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented, configured):
        raise Unauthenticated(
            "An operator token is required.",
            headers={"WWW-Authenticate": 'Bearer realm="cmr-vault-admin"'},
        )
    return "operator:api"


def client_document(client: OAuthClient) -> ClientDocument:
    """A company as the admin API shows it (never its secret hash)."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "description": client.description,
        "homepage": client.homepage,
        "privacy_policy_url": client.privacy_policy_url,
        "redirect_uris": json.loads(client.redirect_uris),
        "notice": json.loads(client.notice),
        "notice_version": client.notice_version,
        "status": str(client.status),
        "public": client.secret_hash is None,
        "created_at": client.created_at.isoformat(),
        "sector_identifier": client.sector_identifier,
        "id_token_signed_response_alg": client.id_token_alg,
    }


class AdminClientsApi(Controller):
    """Companies, for the operator."""

    path = "/api/v1/admin/clients"
    tags = ["admin"]
    security = OPERATOR_TOKEN
    dependencies = {"operator": Provide(provide_operator, sync_to_thread=False)}

    @get("/", sync_to_thread=True)
    def list_clients(
        self,
        operator: Operator,  # noqa: ARG002 (the dependency is the guard)
        db_session: DbSession,
    ) -> ClientList:
        """Every registered company."""
        return {"clients": [client_document(c) for c in oauth_service.list_clients(db_session)]}

    @post("/", status_code=201, sync_to_thread=True)
    def register(
        self,
        operator: Operator,
        data: JSONBody[ClientRegistrationBody],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> RegisteredClient:
        """Register a company; the answer holds its secret, shown this once only."""
        client, secret = oauth_service.register_client(
            db_session,
            clock=runtime.clock,
            approved=data.approved,
            registration=oauth_service.ClientRegistration(
                name=data.name,
                description=data.description,
                homepage=data.homepage,
                privacy_policy_url=data.privacy_policy_url,
                redirect_uris=data.redirect_uris,
                notice=data.notice,
                public=data.public,
            ),
        )
        audit_service.record(
            db_session,
            clock=runtime.clock,
            event=audit_service.AuditEvent(
                actor=operator,
                action="client.registered",
                resource=f"company:{client.client_id}",
                details={"company": client.client_id, "scopes": sorted(data.notice)},
            ),
        )
        return {**client_document(client), "client_secret": secret}

    @post("/{client_id:str}/status", status_code=200, sync_to_thread=True)
    def set_status(
        self,
        operator: Operator,
        client_id: FromPath[str],
        data: JSONBody[StatusBody],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> ClientDocument:
        """Approve or suspend a company (suspension stops its tokens at once)."""
        client = oauth_service.set_client_status(
            db_session, client_id=client_id, status=data.status
        )
        audit_service.record(
            db_session,
            clock=runtime.clock,
            event=audit_service.AuditEvent(
                actor=operator,
                action=f"client.{data.status}",
                resource=f"company:{client_id}",
                details={"company": client_id},
            ),
        )
        return client_document(client)
