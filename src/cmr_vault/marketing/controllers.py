"""Marketing over HTTP: the push and consent-check API, the preference center, the inbox and
the one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session

from cmr_vault.accounts.deps import Customer, provide_customer
from cmr_vault.consent import service as consent_service
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import Forbidden, NotFound, ValidationFailed
from cmr_vault.intents import service as intents_service
from cmr_vault.marketing import campaigns, jobs
from cmr_vault.marketing import service as marketing_service
from cmr_vault.marketing.delivery import Envelope
from cmr_vault.marketing.models import ALL, Campaign, Message
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.deps import (
    CompanyAccess,
    CompanyAccessDep,
    CompanyClient,
    company_before_body,
    provide_company_access,
    provide_company_client,
)
from cmr_vault.oauth.scopes import CHANNELS
from cmr_vault.patterns import NOT_BLANK
from cmr_vault.policy.facts import Outcome
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from cmr_vault.web.errors import exception_to_http_response
from cmr_vault.web.openapi import ACCESS_TOKEN, COMPANY_CLIENT

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


class PushBody(BaseModel):
    """A message for one customer, delivered by the vault on the customer's terms."""

    subject: str = Field(description="Your pairwise subject for the customer.", max_length=64)
    channel: str = Field(description=f"One of {', '.join(CHANNELS)}.", max_length=16)
    topic: str = Field(default="", max_length=64)
    purpose: str = Field(max_length=200)
    title: str = Field(max_length=marketing_service.MAX_SUBJECT)
    body: str = Field(max_length=marketing_service.MAX_BODY)
    idempotency_key: str = Field(max_length=128)


class ConsentCheckBody(BaseModel):
    """May this company send this message to this customer now?"""

    subject: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    topic: str = Field(default="", max_length=64)
    purpose: str = Field(max_length=200)


def _own_subject(access: CompanyAccess, subject: str) -> None:
    if not hmac.compare_digest(subject.encode(), access.grant.pairwise_subject.encode()):
        raise NotFound("This token gives no access to that subject.")


def _message_document(message: Message) -> dict[str, Any]:
    return {"message_id": message.id, "status": str(message.status),
            "not_before": message.not_before.isoformat(), "channel": message.channel,
            "topic": message.topic, "purpose": message.purpose,
            "delivered_at": message.delivered_at.isoformat() if message.delivered_at else None}


class PushesApi(Controller):
    """Companies push messages through the vault and ask before they send elsewhere."""

    path = "/api/v1"
    tags = ["marketing"]
    security = ACCESS_TOKEN
    dependencies = {"access": Provide(provide_company_access, sync_to_thread=True)}

    @post("/pushes", status_code=202, sync_to_thread=True)
    def push(self, request: Request[Any, Any, Any], data: JSONBody[PushBody],
             access: CompanyAccessDep, db_session: DbSession, runtime: RuntimeDep
             ) -> Response[Any] | dict[str, Any]:
        """Queue a message (202), queue it deferred with the time it will go (202), or refuse
        it with the reasons (403). The same idempotency key always gives the same answer.
        Limited per company: 429 with Retry-After."""
        runtime.rate_limits.pushes.hit(db_session, access.client.client_id, "pushes")
        _own_subject(access, data.subject)
        outcome = marketing_service.submit_push(
            db_session, clock=runtime.clock, policy=runtime.policy.current,
            cipher=runtime.cipher, pseudonym_key=runtime.keyring.pseudonym_key,
            grant=access.grant, client=access.client, in_force=access.scopes,
            channels=runtime.delivery_channels,
            push=marketing_service.PushRequest(
                subject=data.subject, channel=data.channel, topic=data.topic,
                purpose=data.purpose, title=data.title, body=data.body,
                idempotency_key=data.idempotency_key))
        if outcome.message is None:
            # Returned, not raised: the refusal's audit entry commits with the request.
            return exception_to_http_response(request, Forbidden(
                "The customer's permissions do not allow this message.",
                problems={hit.rule_id: hit.reason for hit in outcome.decision.rules}))
        if runtime.settings.uses_job_engine and not outcome.repeated:
            deferred = outcome.message.status == "deferred"
            jobs.enqueue_delivery(runtime, outcome.message.not_before if deferred else None)
        return {**_message_document(outcome.message), "repeated": outcome.repeated,
                "decision": outcome.decision.as_record()}

    @get("/pushes/{message_id:str}", sync_to_thread=True)
    def status(self, message_id: FromPath[str], access: CompanyAccessDep,
               db_session: DbSession) -> dict[str, Any]:
        """Where one of your messages is now (never where it went)."""
        message = db_session.get(Message, message_id)
        if message is None or message.client_id != access.client.client_id \
                or message.account_id != access.grant.account_id:
            raise NotFound("No such message for this token.")
        return _message_document(message)

    @post("/consent-check", status_code=200, sync_to_thread=True)
    def consent_check(self, data: JSONBody[ConsentCheckBody], access: CompanyAccessDep,
                      db_session: DbSession, runtime: RuntimeDep) -> dict[str, Any]:
        """The decision a push would get now, with its reasons, without sending anything."""
        runtime.rate_limits.pushes.hit(db_session, access.client.client_id,
                                       "pushes and consent checks")
        _own_subject(access, data.subject)
        decision = marketing_service.check_push(
            db_session, clock=runtime.clock, policy=runtime.policy.current,
            cipher=runtime.cipher, pseudonym_key=runtime.keyring.pseudonym_key,
            grant=access.grant, client=access.client, in_force=access.scopes,
            channel=data.channel, topic=data.topic, purpose=data.purpose)
        return {"allowed": decision.outcome is Outcome.ALLOW, **decision.as_record()}


def _int(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(value)
    return int(value)


def _pause(value: str) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value.strip() else None


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    return str(value[-1] if isinstance(value, list) else value)


def _change(data: dict[str, Any], client_id: str, channel: str
            ) -> marketing_service.PreferenceChange:
    key = f"{client_id}:{channel}"
    try:
        return marketing_service.PreferenceChange(
            client_id=client_id, channel=channel,
            opted_in=channel == ALL or _text(data, f"optin:{key}") == "on",
            topics=[t.strip().lower() for t in _text(data, f"topics:{key}").split(",")
                    if t.strip()],
            cap_day=_int(_text(data, f"cap_day:{key}")),
            cap_week=_int(_text(data, f"cap_week:{key}")),
            cap_month=_int(_text(data, f"cap_month:{key}")),
            quiet_start=_text(data, f"quiet_start:{key}").strip() or None,
            quiet_end=_text(data, f"quiet_end:{key}").strip() or None,
            paused_until=_pause(_text(data, f"pause:{key}")),
        )
    except ValueError as exc:
        raise ValidationFailed("Caps are whole numbers and pauses are dates.",
                               problems={key: "caps are whole numbers, pauses dates"}) from exc


def _send_confirmation(runtime: Runtime, session: Session, account_id: str, company: str,
                       token: str) -> bool:
    """Double opt-in: a confirmation link to the customer's own address, from the vault."""
    channel = runtime.delivery_channels.get("email")
    if channel is None:
        return False
    address = vault_service.read_fields(session, cipher=runtime.cipher, account_id=account_id,
                                        names=["email"]).get("email", "")
    link = f"{runtime.settings.issuer}/preferences/confirm/{token}"
    channel.deliver(Envelope(
        message_id=token[:16], company_name="CMR Vault", address=address,
        subject=f"Confirm e-mail from {company}",
        body=f"You asked to receive e-mail from {company}. Confirm here: {link}\n"
             "If this was not you, ignore this message: nothing will be sent.",
        unsubscribe_url=f"{runtime.settings.issuer}/preferences"))
    return True


class PreferencePages(Controller):
    """The preference center and the inbox, for the signed-in customer."""

    include_in_schema = False  # pages for people, not the machine API

    dependencies = {"customer": Provide(provide_customer, sync_to_thread=True)}

    def _page(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep,
              problems: dict[str, str] | None = None, notice: str = "",
              status: int = 200, new_secret: str = "") -> Template:
        companies = marketing_service.marketing_connections(
            db_session, account_id=customer.id, now=runtime.clock.now())
        overall = marketing_service.get_preference(db_session, customer.id, ALL, ALL)
        rows = {f"{ALL}:{ALL}": overall} | {f"{c.client_id}:{ch}": row
                                            for c, _, prefs in companies
                                            for ch, row in prefs.items()}
        topics = {key: ", ".join(marketing_service.open_topics(runtime.cipher, row))
                  for key, row in rows.items() if row}
        return Template("marketing/preferences.html", status_code=status, context={
            "account": customer, "companies": companies, "overall": overall, "topics": topics,
            "problems": problems or {}, "notice": notice, "new_secret": new_secret,
            "webhook_url": marketing_service.endpoint_url(
                db_session, cipher=runtime.cipher, account_id=customer.id),
            "email_available": "email" in runtime.delivery_channels})

    @get("/preferences", sync_to_thread=True)
    def preferences(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep,
                    saved: FromQuery[bool] = False,
                    confirm: Annotated[int, QueryParameter(ge=0, le=100)] = 0) -> Template:
        """Per company and channel: opt-in, topics, caps, quiet hours, pause; and overall."""
        notice = "Saved." if saved else ""
        if confirm:
            notice += f" We sent {confirm} confirmation link(s) to your e-mail address."
        return self._page(customer, db_session, runtime, notice=notice.strip())

    @post("/preferences", status_code=200, sync_to_thread=True)
    def save(self, data: Form, customer: Customer, db_session: DbSession,
             runtime: RuntimeDep) -> Response[Any] | Template:
        """Validate everything, then save it all; on any error nothing is saved."""
        targets = [(c.client_id, ch) for c, channels, _ in marketing_service.marketing_connections(
            db_session, account_id=customer.id, now=runtime.clock.now()) for ch in channels]
        try:
            changes = [_change(data, ALL, ALL)] + [_change(data, c, ch) for c, ch in targets]
            tokens = []
            consent = runtime.consent_context()
            for change in changes:
                token = marketing_service.set_preference(
                    db_session, consent, cipher=runtime.cipher, account_id=customer.id,
                    change=change)
                if token:
                    tokens.append((change.client_id, token))
            new_secret = self._endpoint(data, customer, db_session, runtime)
        except ValidationFailed as exc:
            db_session.rollback()
            return self._page(customer, db_session, runtime, exc.problems, exc.detail, 400)
        sent = sum(_send_confirmation(runtime, db_session, customer.id, company, token)
                   for company, token in tokens)
        if new_secret:
            # Shown once, on this page, never in a URL.
            return self._page(customer, db_session, runtime, notice="Saved.",
                              new_secret=new_secret)
        return Redirect(path=f"/preferences?saved=1&confirm={sent}", status_code=303)

    def _endpoint(self, data: Form, customer: Customer, db_session: DbSession,
                  runtime: RuntimeDep) -> str:
        url = _text(data, "webhook_url").strip()
        current = marketing_service.endpoint_url(db_session, cipher=runtime.cipher,
                                                 account_id=customer.id)
        if not url or url == current:
            return ""
        return marketing_service.set_endpoint(
            db_session, clock=runtime.clock, cipher=runtime.cipher,
            pseudonym_key=runtime.keyring.pseudonym_key, account_id=customer.id, url=url,
            allow_loopback=runtime.settings.webhook_allow_loopback)

    @post("/preferences/renew", status_code=303, sync_to_thread=True)
    def renew_opt_in(self, data: Form, customer: Customer, db_session: DbSession,
                     runtime: RuntimeDep) -> Redirect:
        """One step: an expiring opt-in runs for another reaffirmation period.

        `target` is "<client_id>:<channel>", as the preference rows are keyed."""
        client_id, _, channel = _text(data, "target").rpartition(":")
        marketing_service.renew_opt_in(db_session, runtime.consent_context(),
                                       account_id=customer.id, client_id=client_id,
                                       channel=channel)
        return Redirect(path="/preferences?saved=true", status_code=303)

    @get("/inbox", sync_to_thread=True)
    def inbox(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep) -> Template:
        """Messages companies sent to the in-vault inbox, and the vault's own reminders."""
        reminders = consent_service.reminders_of(db_session, customer.id)
        names = {c: oauth_service.get_client(db_session, c).name
                 for c in {r.client_id for r in reminders}}
        return Template("marketing/inbox.html", context={
            "account": customer, "now": runtime.clock.now(),
            "reminders": [(r, names[r.client_id]) for r in reminders],
            "offers": intents_service.offers_for(db_session, cipher=runtime.cipher,
                                                 account_id=customer.id,
                                                 now=runtime.clock.now()),
            "messages": marketing_service.inbox(db_session, cipher=runtime.cipher,
                                                account_id=customer.id)})


class OptInLinks(Controller):
    """Links that arrive by e-mail: no sign-in, the unguessable token is the authority."""

    include_in_schema = False  # pages for people, not the machine API

    include_in_schema = False

    @get("/preferences/confirm/{token:str}", sync_to_thread=True)
    def confirm(self, token: FromPath[str], db_session: DbSession,
                runtime: RuntimeDep) -> Template:
        """Double opt-in: confirming makes the e-mail opt-in count, and keeps the time."""
        row = marketing_service.confirm_opt_in(db_session, clock=runtime.clock,
                                               pseudonym_key=runtime.keyring.pseudonym_key,
                                               token=token)
        return Template("marketing/confirmed.html", context={"row": row})

    @get("/unsubscribe/{token:str}", sync_to_thread=False)
    def unsubscribe_form(self, token: FromPath[str]) -> Template:
        """A page with one button (mail scanners follow GET links; only POST unsubscribes)."""
        return Template("marketing/unsubscribe.html", context={"token": token, "done": None})

    @post("/unsubscribe/{token:str}", status_code=200, sync_to_thread=True)
    def unsubscribe(self, token: FromPath[str], db_session: DbSession,
                    runtime: RuntimeDep) -> Template:
        """RFC 8058 one-click: a POST with List-Unsubscribe=One-Click (or the page's button)."""
        company = marketing_service.unsubscribe(db_session, runtime.consent_context(),
                                                token=token)
        return Template("marketing/unsubscribe.html", context={"token": token,
                                                               "done": company.name})


class CampaignBody(BaseModel):
    """One message for many subjects; `dry_run` decides without sending anything."""

    subjects: list[str] = Field(min_length=1, max_length=campaigns.MAX_SUBJECTS)
    channel: Literal["email", "sms", "inbox", "webhook"]
    topic: str = Field(default="", max_length=64)
    purpose: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    title: str = Field(min_length=1, max_length=marketing_service.MAX_SUBJECT, pattern=NOT_BLANK)
    body: str = Field(min_length=1, max_length=marketing_service.MAX_BODY, pattern=NOT_BLANK)
    dry_run: bool = False

    @field_validator("dry_run", mode="before")
    @classmethod
    def _only_true_or_false(cls, value: object) -> object:
        """0, "0" or "false" must never silently start a real run."""
        if not isinstance(value, bool):
            raise ValueError("dry_run is true or false")
        return value


def _campaign_document(campaign: Campaign) -> dict[str, Any]:
    return {"campaign_id": campaign.id, "status": campaign.status, "total": campaign.total,
            "processed": campaign.processed, "counts": json.loads(campaign.counts),
            "created_at": campaign.created_at.isoformat(),
            "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None}


class CampaignsApi(Controller):
    """Campaigns, authenticated with the company's own client credentials."""

    path = "/api/v1/campaigns"
    tags = ["marketing"]
    security = COMPANY_CLIENT
    dependencies = {"company": Provide(provide_company_client, sync_to_thread=True)}

    # A million pairwise subjects are about 45 MB of JSON.
    @post("/", status_code=202, sync_to_thread=True, request_max_body_size=64 * 1024 * 1024,
          before_request=company_before_body)
    def create(self, data: JSONBody[CampaignBody], company: CompanyClient,
               db_session: DbSession, runtime: RuntimeDep) -> dict[str, Any]:
        """Dry run: counts by outcome and rule, and a result per subject. Real run: 202 with
        the campaign to poll; it is worked off in the background."""
        request = campaigns.CampaignRequest(data.subjects, data.channel, data.topic,
                                            data.purpose, data.title, data.body)
        if data.dry_run:
            tally, per_subject = campaigns.dry_run(
                db_session, cipher=runtime.cipher, policy=runtime.policy.current,
                client=company, request=request, now=runtime.clock.now())
            return {"dry_run": True, "total": len(data.subjects), **tally.document(),
                    "results": per_subject}
        campaign = campaigns.start(db_session, clock=runtime.clock, client=company,
                                   request=request, quota=campaigns.Quota(
                                       runtime.settings.campaign_subjects_per_day,
                                       runtime.settings.campaigns_running))
        if runtime.settings.uses_job_engine:
            jobs.enqueue_campaign(runtime)
        return _campaign_document(campaign)

    @get("/{campaign_id:str}", sync_to_thread=True)
    def progress(self, campaign_id: FromPath[str], company: CompanyClient,
                 db_session: DbSession) -> dict[str, Any]:
        """How far a campaign has got, with counts by outcome."""
        return _campaign_document(campaigns.get(db_session, client_id=company.client_id,
                                                campaign_id=campaign_id))

    @get("/{campaign_id:str}/results", sync_to_thread=True)
    def results(self, campaign_id: FromPath[str], company: CompanyClient, db_session: DbSession,
                after: Annotated[int, QueryParameter(ge=0, le=campaigns.MAX_SUBJECTS)] = 0,
                limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000
                ) -> dict[str, Any]:
        """A result per subject, in order, `limit` (at most 10,000) at a time."""
        campaign = campaigns.get(db_session, client_id=company.client_id,
                                 campaign_id=campaign_id)
        rows = campaigns.results(db_session, campaign, after=after, limit=limit)
        return {"results": [{"position": r.position, "subject": r.subject,
                             "outcome": r.outcome or "pending",
                             "rule_ids": [x for x in r.rule_ids.split(",") if x],
                             "message_id": r.message_id,
                             "not_before": r.not_before.isoformat() if r.not_before else None}
                            for r in rows],
                "next_after": rows[-1].position + 1 if rows else None}
