"""The company's side of consent: its grants, the events it must follow and acknowledge, the
notice it publishes; and, for anyone, checking a consent receipt."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from pydantic import BaseModel, Field

from cmr_vault.consent import events, receipts
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.models import Grant
from cmr_vault.consent.schemas import (
    EventDocument,
    EventList,
    GrantDocument,
    GrantList,
    KeySetDocument,
    NoticeDocument,
    ReceiptCheckDocument,
    WebhookDocument,
    WebhookRegistered,
)
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import NotFound
from cmr_vault.oauth import jwks
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.deps import CompanyClient, provide_company_client
from cmr_vault.oauth.scopes import Notice
from cmr_vault.patterns import WEB_URL
from cmr_vault.web.openapi import COMPANY_CLIENT


def grant_document(grant: Grant, now: datetime) -> GrantDocument:
    """A grant as the company may see it: its pseudonym for the customer, never the account."""
    return {
        "grant_id": grant.id,
        "subject": grant.pairwise_subject,
        "status": consent_service.state_of(grant, now),
        "dpv_status": consent_service.dpv_status_of(grant, [], now),
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
    security = COMPANY_CLIENT
    dependencies = {"company": Provide(provide_company_client, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def list_grants(self, company: CompanyClient, db_session: DbSession,
                    runtime: RuntimeDep) -> GrantList:
        """Every grant customers gave this company, with its state now (not those it gave up)."""
        now = runtime.clock.now()
        grants = consent_service.grants_of_client(db_session, client_id=company.client_id)
        return {"grants": [grant_document(g, now) for g in grants]}

    @get("/{grant_id:str}", sync_to_thread=True)
    def get_grant(self, grant_id: FromPath[str], company: CompanyClient, db_session: DbSession,
                  runtime: RuntimeDep) -> GrantDocument:
        """One grant with its state now (404 once the company has given it up)."""
        grant = consent_service.grant_held_by(db_session, client_id=company.client_id,
                                              grant_id=grant_id)
        return grant_document(grant, runtime.clock.now())

    @delete("/{grant_id:str}", status_code=200, sync_to_thread=True)
    def relinquish(self, grant_id: FromPath[str], company: CompanyClient, db_session: DbSession,
                   runtime: RuntimeDep) -> GrantDocument:
        """Give a grant up: its tokens stop at once and the customer sees it relinquished."""
        grant = consent_service.relinquish(db_session, runtime.consent_context(),
                                           client_id=company.client_id, grant_id=grant_id)
        return grant_document(grant, runtime.clock.now())


class WebhookBody(BaseModel):
    """Where the company wants its consent events."""

    url: str = Field(min_length=8, max_length=500, pattern=WEB_URL)


class NoticeBody(BaseModel):
    """A new version of the company's notice: scope -> purposes."""

    notice: Notice


class CompanyEventsApi(Controller):
    """The company follows consent changes: its webhook, its events, its acknowledgements,
    and the notice it publishes. Authenticated with its client credentials (HTTP Basic)."""

    path = "/api/v1"
    tags = ["events"]
    security = COMPANY_CLIENT
    dependencies = {"company": Provide(provide_company_client, sync_to_thread=True)}

    @put("/webhook", sync_to_thread=True)
    def set_webhook(self, data: JSONBody[WebhookBody], company: CompanyClient,
                    db_session: DbSession, runtime: RuntimeDep) -> WebhookRegistered:
        """Register (or replace) the webhook; the signing secret is shown this once."""
        secret = events.register_webhook(
            db_session, clock=runtime.clock, cipher=runtime.cipher, data_keys=runtime.data_keys,
            client_id=company.client_id, url=data.url,
            allow_loopback=runtime.settings.webhook_allow_loopback)
        return {"url": data.url, "secret": secret, "scheme": "Standard Webhooks v1"}

    @get("/webhook", sync_to_thread=True)
    def get_webhook(self, company: CompanyClient, db_session: DbSession) -> WebhookDocument:
        """The registered webhook (never its secret)."""
        row = events.webhook_of(db_session, company.client_id)
        if row is None:
            raise NotFound("No webhook is registered.")
        return {"url": row.url, "updated_at": row.updated_at.isoformat()}

    @delete("/webhook", status_code=204, sync_to_thread=True)
    def remove_webhook(self, company: CompanyClient, db_session: DbSession,
                       runtime: RuntimeDep) -> None:
        """Stop pushing events (they can still be pulled and acknowledged)."""
        events.remove_webhook(db_session, clock=runtime.clock, client_id=company.client_id)

    @get("/events", sync_to_thread=True)
    def list_events(self, company: CompanyClient, db_session: DbSession,
                    pending: FromQuery[bool] = True,
                    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
                    ) -> EventList:
        """The company's events, oldest first; by default only those not yet acknowledged."""
        found = events.events_for(db_session, client_id=company.client_id,
                                  unacknowledged=pending, limit=limit)
        return {"events": [events.document(e) for e in found]}

    @post("/events/{event_id:str}/ack", status_code=200, sync_to_thread=True)
    def acknowledge(self, event_id: FromPath[str], company: CompanyClient,
                    db_session: DbSession, runtime: RuntimeDep) -> EventDocument:
        """Confirm the change was followed; recorded in the audit log."""
        event = events.acknowledge(db_session, clock=runtime.clock,
                                   client_id=company.client_id, event_id=event_id)
        return events.document(event)

    @put("/notice", sync_to_thread=True)
    def publish_notice(self, data: JSONBody[NoticeBody], company: CompanyClient,
                       db_session: DbSession, runtime: RuntimeDep) -> NoticeDocument:
        """Publish a new notice version; existing grants keep what their customers saw."""
        client = oauth_service.publish_notice(db_session, clock=runtime.clock, client=company,
                                              notice=data.notice)
        return {"notice": json.loads(client.notice), "notice_version": client.notice_version}


class ReceiptsApi(Controller):
    """Anyone holding a receipt can have it checked, and fetch the key to check it alone."""

    tags = ["receipts"]

    @post("/api/v1/receipts/verify", status_code=200, sync_to_thread=True)
    def verify(self, data: JSONBody[dict[str, Any]], runtime: RuntimeDep) -> ReceiptCheckDocument:
        """Check a receipt file against this vault's public key and its witnesses' keys."""
        signer = runtime.receipt_signer()
        check = receipts.verify_file(json.dumps(data), signer.verifier_key, signer.witnesses)
        return {"valid": check.valid, "problems": check.problems,
                "receipt_id": (check.claims or {}).get("consentReceiptID"),
                "cosigned_by": check.cosigned_by}

    @get("/.well-known/jwks.json", sync_to_thread=True)
    def jwks(self, runtime: RuntimeDep) -> KeySetDocument:
        """The receipt signing key (which also signs the log's tree heads), then every id_token
        key still published (OpenID Connect `jwks_uri`); each names its `kid` and `alg`."""
        keyring = runtime.keyring
        return {"keys": [receipts.public_jwk(keyring.signing_key, runtime.log_origin),
                         *jwks.public_keys(keyring, runtime.clock.now())]}
