"""The company's view of its grants: list them, relinquish one it no longer needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, delete, get
from litestar.di import Provide
from litestar.params import FromPath

from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.oauth.deps import CompanyClient, provide_company_client


def grant_document(grant: Grant, now: datetime) -> dict[str, Any]:
    """A grant as the company may see it: its pseudonym for the customer, never the account."""
    return {
        "grant_id": grant.id,
        "subject": grant.pairwise_subject,
        "status": consent_service.state_of(grant, now),
        "scopes": consent_service.scopes_of(grant),
        "purposes": consent_service.purposes_of(grant),
        "notice_version": grant.notice_version,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "granted_at": grant.created_at.isoformat(),
        "updated_at": grant.updated_at.isoformat(),
    }


class CompanyGrantsApi(Controller):
    """Authenticated with the company's own client credentials (HTTP Basic)."""

    path = "/api/v1/grants"
    tags = ["grants"]
    dependencies = {"company": Provide(provide_company_client, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def list_grants(self, company: CompanyClient, db_session: DbSession,
                    runtime: RuntimeDep) -> dict[str, Any]:
        """Every grant customers gave this company, with its state now."""
        now = runtime.clock.now()
        grants = consent_service.grants_of_client(db_session, client_id=company.client_id)
        return {"grants": [grant_document(g, now) for g in grants]}

    @delete("/{grant_id:str}", status_code=200, sync_to_thread=True)
    def relinquish(self, grant_id: FromPath[str], company: CompanyClient, db_session: DbSession,
                   runtime: RuntimeDep) -> dict[str, Any]:
        """Give a grant up: its tokens stop at once and the customer sees it relinquished."""
        grant = consent_service.relinquish(db_session, runtime.consent_context(),
                                           client_id=company.client_id, grant_id=grant_id)
        return grant_document(grant, runtime.clock.now())
