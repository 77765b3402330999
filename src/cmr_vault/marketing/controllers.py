"""Marketing over HTTP: the push and consent-check API, the preference center, the inbox and
the one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.params import Body, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session

from cmr_vault.accounts.deps import Customer, provide_customer
from cmr_vault.auditor.activity import channel_words
from cmr_vault.consent import service as consent_service
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import Forbidden, NotFound, ValidationFailed
from cmr_vault.i18n import gettext as _
from cmr_vault.i18n import ngettext
from cmr_vault.intents import service as intents_service
from cmr_vault.marketing import campaigns, jobs
from cmr_vault.marketing import service as marketing_service
from cmr_vault.marketing.delivery import Envelope
from cmr_vault.marketing.models import ALL, Campaign, ChannelPreference, Message
from cmr_vault.marketing.schemas import (
    CampaignDocument,
    CampaignResults,
    ConsentCheckAnswer,
    DryRunAnswer,
    MessageDocument,
    PushAnswer,
)
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.deps import (
    CompanyAccess,
    CompanyAccessDep,
    CompanyClient,
    company_before_body,
    provide_company_access,
    provide_company_client,
)
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import CHANNELS
from cmr_vault.patterns import NOT_BLANK
from cmr_vault.policy.facts import Outcome
from cmr_vault.portal.dates import FORMATTERS
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


def _message_document(message: Message) -> MessageDocument:
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

    @post("/pushes", status_code=202, sync_to_thread=True, responses={
        202: ResponseSpec(data_container=PushAnswer, description="Queued, or deferred")})
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
               db_session: DbSession) -> MessageDocument:
        """Where one of your messages is now (never where it went)."""
        message = db_session.get(Message, message_id)
        if message is None or message.client_id != access.client.client_id \
                or message.account_id != access.grant.account_id:
            raise NotFound("No such message for this token.")
        return _message_document(message)

    @post("/consent-check", status_code=200, sync_to_thread=True)
    def consent_check(self, data: JSONBody[ConsentCheckBody], access: CompanyAccessDep,
                      db_session: DbSession, runtime: RuntimeDep) -> ConsentCheckAnswer:
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


def _values(data: dict[str, Any], key: str) -> list[str]:
    """Every value of a repeated field (ticked checkboxes share one name)."""
    value = data.get(key, [])
    return [str(v) for v in (value if isinstance(value, list) else [value])]


STOP_ALL = "stop_all"


def _topics(data: dict[str, Any], key: str) -> list[str]:
    """`any` topic, or the ticked ones plus any typed under "other topics"."""
    if _text(data, f"topics_mode:{key}") != "chosen":
        return []
    typed = _text(data, f"topics_more:{key}").split(",")
    topics = sorted({t.strip().lower() for t in [*_values(data, f"topic:{key}"), *typed]
                     if t.strip()})
    if not topics:
        raise ValidationFailed(_("Tick at least one topic, or choose any topic."),
                               problems={f"topics:{key}": _("tick at least one topic")})
    return topics


def _change(data: dict[str, Any], client_id: str, channel: str
            ) -> marketing_service.PreferenceChange:
    """One card of the preference form as a change; a bad value names its own field."""
    key = f"{client_id}:{channel}"
    problems: dict[str, str] = {}
    caps: dict[str, int | None] = {}
    for name in ("cap_day", "cap_week", "cap_month"):
        try:
            caps[name] = _int(_text(data, f"{name}:{key}"))
        except ValueError:
            problems[f"{name}:{key}"] = _("a whole number, or leave it empty for no limit")
    if channel == ALL and _text(data, STOP_ALL) == "on":
        caps = {"cap_day": 0, "cap_week": 0, "cap_month": 0}  # nothing gets through
        problems = {}
    try:
        paused_until = _pause(_text(data, f"pause:{key}"))
    except ValueError:
        problems[f"pause:{key}"] = _("a date")
        paused_until = None
    if problems:
        raise ValidationFailed(_("Some preferences are not valid; nothing was saved."),
                               problems=problems)
    change = marketing_service.PreferenceChange(
        client_id=client_id, channel=channel,
        opted_in=channel == ALL or _text(data, f"optin:{key}") == "on",
        topics=_topics(data, key), cap_day=caps["cap_day"], cap_week=caps["cap_week"],
        cap_month=caps["cap_month"],
        quiet_start=_text(data, f"quiet_start:{key}").strip() or None,
        quiet_end=_text(data, f"quiet_end:{key}").strip() or None,
        paused_until=paused_until)
    try:
        marketing_service.check_preference(change)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.detail, problems={
            f"{name}:{key}": message for name, message in exc.problems.items()}) from exc
    return change


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


@dataclass(frozen=True)
class PreferenceCard:
    """One company and channel on the preference page, with the topics to choose from."""

    key: str
    company: OAuthClient
    channel: str
    channel_words: str
    pref: ChannelPreference | None
    topics: list[str]
    topic_choices: list[str]


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
        interests = vault_service.read_profile(db_session, cipher=runtime.cipher,
                                               account_id=customer.id).interests
        cards = []
        for company, channels, prefs in companies:
            sent = marketing_service.topics_sent(db_session, account_id=customer.id,
                                                 client_id=company.client_id)
            for channel in channels:
                row = prefs.get(channel)
                chosen = marketing_service.open_topics(runtime.cipher, row) if row else []
                cards.append(PreferenceCard(
                    key=f"{company.client_id}:{channel}", company=company, channel=channel,
                    channel_words=channel_words(channel), pref=row, topics=chosen,
                    topic_choices=sorted({*chosen, *interests, *sent})))
        return Template("marketing/preferences.html", status_code=status, context={
            **FORMATTERS, "account": customer, "cards": cards, "overall": overall,
            "stopped": bool(overall and overall.cap_day == 0 and overall.cap_week == 0
                            and overall.cap_month == 0),
            "problems": problems or {}, "notice": notice, "new_secret": new_secret,
            "webhook_url": marketing_service.endpoint_url(
                db_session, cipher=runtime.cipher, account_id=customer.id),
            "email_available": "email" in runtime.delivery_channels})

    @get("/preferences", sync_to_thread=True)
    def preferences(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep,
                    saved: FromQuery[bool] = False,
                    confirm: Annotated[int, QueryParameter(ge=0, le=100)] = 0) -> Template:
        """One card per company and channel (opt-in, topics, caps, quiet hours, pause), one
        for all companies together with a switch that stops all marketing, and one for the
        customer's own app."""
        notice = _("Saved.") if saved else ""
        if confirm:
            notice += " " + ngettext(
                "We sent a confirmation link to your e-mail address.",
                "We sent %(num)d confirmation links to your e-mail address.", confirm) % {
                    "num": confirm}
        return self._page(customer, db_session, runtime, notice=notice.strip())

    @post("/preferences", status_code=200, sync_to_thread=True)
    def save(self, data: Form, customer: Customer, db_session: DbSession,
             runtime: RuntimeDep) -> Response[Any] | Template:
        """Validate every card, then save them all; on any error nothing is saved and each
        problem is shown beside its field."""
        targets = [(ALL, ALL)] + [
            (c.client_id, ch) for c, channels, _ in marketing_service.marketing_connections(
                db_session, account_id=customer.id, now=runtime.clock.now())
            for ch in channels]
        changes, problems = [], {}
        for client_id, channel in targets:
            try:
                changes.append(_change(data, client_id, channel))
            except ValidationFailed as exc:
                problems.update(exc.problems)
        try:
            if problems:
                raise ValidationFailed(_("Some preferences are not valid; nothing was saved."),
                                       problems=problems)
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
            return self._page(customer, db_session, runtime, exc.problems,
                              _("Some preferences are not valid; nothing was saved."), 400)
        sent = sum(_send_confirmation(runtime, db_session, customer.id, company, token)
                   for company, token in tokens)
        if new_secret:
            # Shown once, on this page, never in a URL.
            return self._page(customer, db_session, runtime, notice=_("Saved."),
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


def _campaign_document(campaign: Campaign) -> CampaignDocument:
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
               db_session: DbSession, runtime: RuntimeDep) -> DryRunAnswer | CampaignDocument:
        """Dry run: counts by outcome and rule, and a result per subject. Real run: 202 with
        the campaign to poll; it is worked off in the background."""
        request = campaigns.CampaignRequest(data.subjects, data.channel, data.topic,
                                            data.purpose, data.title, data.body)
        if data.dry_run:
            dry = campaigns.dry_run(
                db_session, cipher=runtime.cipher, policy=runtime.policy.current,
                client=company, request=request, now=runtime.clock.now())
            return {"dry_run": True, "total": len(data.subjects), **dry.tally.document(),
                    "results": dry.results()}
        campaign = campaigns.start(db_session, clock=runtime.clock, client=company,
                                   request=request, quota=campaigns.Quota(
                                       runtime.settings.campaign_subjects_per_day,
                                       runtime.settings.campaigns_running))
        if runtime.settings.uses_job_engine:
            jobs.enqueue_campaign(runtime)
        return _campaign_document(campaign)

    @get("/{campaign_id:str}", sync_to_thread=True)
    def progress(self, campaign_id: FromPath[str], company: CompanyClient,
                 db_session: DbSession) -> CampaignDocument:
        """How far a campaign has got, with counts by outcome."""
        return _campaign_document(campaigns.get(db_session, client_id=company.client_id,
                                                campaign_id=campaign_id))

    @get("/{campaign_id:str}/results", sync_to_thread=True)
    def results(self, campaign_id: FromPath[str], company: CompanyClient, db_session: DbSession,
                after: Annotated[int, QueryParameter(ge=0, le=campaigns.MAX_SUBJECTS)] = 0,
                limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000
                ) -> CampaignResults:
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
