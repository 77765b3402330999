"""Intents over HTTP: the company's API (see intents, answer, invite, value offers) and the
customer's pages (publish and withdraw intents; accept, decline or block offers)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field

from cmr_vault.accounts.deps import Customer, provide_customer
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import Forbidden, NotFound, ValidationFailed
from cmr_vault.intents import service as intents_service
from cmr_vault.intents.models import Offer
from cmr_vault.intents.schemas import (
    FulfilledDocument,
    IntentList,
    OfferAnswer,
    ProgrammeDocument,
    ValueOfferDocument,
)
from cmr_vault.marketing.models import ALL
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.deps import CompanyClient, provide_company_client
from cmr_vault.patterns import NOT_BLANK
from cmr_vault.policy.facts import Decision, Outcome
from cmr_vault.portal import service as portal_service
from cmr_vault.portal.dates import FORMATTERS
from cmr_vault.portal.forms import form_text
from cmr_vault.web.errors import exception_to_http_response
from cmr_vault.web.openapi import COMPANY_CLIENT

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


class OfferBody(BaseModel):
    """An offer answering an intent, or the text of an invitation."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=4000)
    value: str = Field(default="", max_length=200)
    consent_request: str = Field(
        default="", max_length=2000,
        description="Optional: the query string of an authorization request (with PKCE) the "
                    "customer's browser follows on accepting.")


class InvitationBody(OfferBody):
    """An invitation for one customer, named by the company's pairwise subject."""

    subject: str = Field(min_length=1, max_length=64)


class ProgrammeBody(BaseModel):
    """A programme: product tests, feedback rounds or a community."""

    kind: Literal["product-tests", "feedback", "community"]
    name: str = Field(min_length=1, max_length=120, pattern=NOT_BLANK)
    description: str = Field(default="", max_length=2000)


class ValueOfferBody(BaseModel):
    """What the customer gets for a grant."""

    kind: Literal["points", "discount", "early-access", "other"]
    description: str = Field(min_length=1, max_length=300, pattern=NOT_BLANK)


def _draft(data: OfferBody) -> intents_service.OfferDraft:
    return intents_service.OfferDraft(title=data.title, body=data.body, value=data.value,
                                      consent_request=data.consent_request)


def _answer(request: Request[Any, Any, Any], offer: Offer,
            decision: Decision) -> Response[Any] | OfferAnswer:
    if decision.outcome is Outcome.DENY:
        # Returned, not raised: the refusal's audit entry commits with the request.
        return exception_to_http_response(request, Forbidden(
            "The customer's settings do not allow this now.",
            problems={hit.rule_id: hit.reason for hit in decision.rules}))
    return {"offer_id": offer.id, "status": offer.status,
            "not_before": offer.not_before.isoformat(), "decision": decision.as_record()}


class CompanyIntentsApi(Controller):
    """Authenticated with the company's client credentials (HTTP Basic)."""

    path = "/api/v1"
    tags = ["intents"]
    security = COMPANY_CLIENT
    dependencies = {"company": Provide(provide_company_client, sync_to_thread=True)}

    @get("/intents", sync_to_thread=True)
    def list_intents(self, company: CompanyClient, db_session: DbSession,
                     runtime: RuntimeDep) -> IntentList:
        """Open intents this company may see; each sighting is audited."""
        found = intents_service.visible_to(
            db_session, runtime.consent_context(), cipher=runtime.cipher,
            index_key=runtime.keyring.index_key, client=company)
        return {"intents": [{
            "intent_id": v.intent.id, "subject": v.subject, "topic": v.content["topic"],
            "text": v.content["text"], "budget": v.content["budget"] or None,
            "valid_until": v.intent.valid_until.isoformat()} for v in found]}

    @post("/intents/{intent_id:str}/offers", status_code=202, sync_to_thread=True,
          responses={202: ResponseSpec(data_container=OfferAnswer,
                                       description="Delivered, or deferred")})
    def answer(self, request: Request[Any, Any, Any], intent_id: FromPath[str],
               data: JSONBody[OfferBody], company: CompanyClient, db_session: DbSession,
               runtime: RuntimeDep) -> Response[Any] | OfferAnswer:
        """Answer an intent: delivered (202), deferred to a time (202) or refused (403)."""
        runtime.rate_limits.pushes.hit(db_session, company.client_id, "offers")
        offer, decision = intents_service.answer_intent(
            db_session, runtime.consent_context(), policy=runtime.policy.current,
            cipher=runtime.cipher, index_key=runtime.keyring.index_key, client=company,
            intent_id=intent_id, draft=_draft(data))
        return _answer(request, offer, decision)

    @post("/programmes", status_code=201, sync_to_thread=True)
    def create_programme(self, data: JSONBody[ProgrammeBody], company: CompanyClient,
                         db_session: DbSession, runtime: RuntimeDep) -> ProgrammeDocument:
        """A programme to invite customers to; joining one is a grant of programmes.<kind>."""
        programme = intents_service.create_programme(
            db_session, runtime.consent_context(), client=company, kind=data.kind,
            name=data.name, description=data.description)
        return {"programme_id": programme.id, "kind": programme.kind, "name": programme.name}

    @post("/programmes/{programme_id:str}/invitations", status_code=202, sync_to_thread=True,
          responses={202: ResponseSpec(data_container=OfferAnswer,
                                       description="Delivered, or deferred")})
    def invite(self, request: Request[Any, Any, Any], programme_id: FromPath[str],
               data: JSONBody[InvitationBody], company: CompanyClient, db_session: DbSession,
               runtime: RuntimeDep) -> Response[Any] | OfferAnswer:
        """Invite one customer who holds a grant with the company."""
        runtime.rate_limits.pushes.hit(db_session, company.client_id, "invitations")
        offer, decision = intents_service.invite(
            db_session, runtime.consent_context(), policy=runtime.policy.current,
            cipher=runtime.cipher, client=company, programme_id=programme_id,
            subject=data.subject, draft=_draft(data))
        return _answer(request, offer, decision)

    @post("/value-offers", status_code=201, sync_to_thread=True)
    def create_value_offer(self, data: JSONBody[ValueOfferBody], company: CompanyClient,
                           db_session: DbSession, runtime: RuntimeDep) -> ValueOfferDocument:
        """Name it in an authorization request as `value_offer=<id>`."""
        offer = intents_service.create_value_offer(db_session, clock=runtime.clock,
                                                   client=company, kind=data.kind,
                                                   description=data.description)
        return {"value_offer_id": offer.id, "kind": offer.kind,
                "description": offer.description}

    @post("/grants/{grant_id:str}/value-fulfilled", status_code=200, sync_to_thread=True)
    def fulfil(self, grant_id: FromPath[str], company: CompanyClient, db_session: DbSession,
               runtime: RuntimeDep) -> FulfilledDocument:
        """Record that the company gave what it promised for the grant."""
        intents_service.fulfil(db_session, runtime.consent_context(),
                               client_id=company.client_id, grant_id=grant_id)
        return {"grant_id": grant_id, "fulfilled": True}


def _whole_days(text: str) -> int:
    """The number of days typed, or 0 (which the service refuses with its reason) for anything
    but a few ASCII digits: `str.isdigit` also accepts "²", which `int` does not, and `int`
    refuses more than 4,300 digits."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0


class IntentPages(Controller):
    """The customer's intents and their answers to offers and invitations."""

    include_in_schema = False  # pages for people, not the machine API

    dependencies = {"customer": Provide(provide_customer, sync_to_thread=True)}

    def _page(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep,
              problems: dict[str, str] | None = None, status: int = 200,
              published: str = "", values: dict[str, Any] | None = None) -> Template:
        now = runtime.clock.now()
        intents = intents_service.intents_of(db_session, cipher=runtime.cipher,
                                             account_id=customer.id, now=now)
        just_published = next((i for i in intents if i.intent.id == published), None)
        audience = intents_service.audience_of(
            db_session, account_id=customer.id, intent_id=just_published.intent.id,
            topic=just_published.content["topic"], now=now) if just_published else []
        return Template("intents/intents.html", status_code=status, context={
            **FORMATTERS, "account": customer, "problems": problems or {}, "values": values or {},
            "intents": intents, "published": just_published, "audience": audience,
            "zone": portal_service.customer_zone(db_session, cipher=runtime.cipher,
                                                 account_id=customer.id),
            "companies": oauth_service.approved_clients(db_session)})

    @get("/intents", sync_to_thread=True)
    def intents(self, customer: Customer, db_session: DbSession, runtime: RuntimeDep,
                published: FromQuery[str] = "") -> Template:
        """Publish what you are looking for; see and withdraw what you published. Just after
        publishing (`published=<id>`) it says so, and names who can see it."""
        return self._page(customer, db_session, runtime, published=published)

    @post("/intents", status_code=200, sync_to_thread=True)
    def publish(self, data: Form, customer: Customer, db_session: DbSession,
                runtime: RuntimeDep) -> Response[Any] | Template:
        """Publish one intent; a form with errors comes back with the reasons."""
        chosen = data.get("audience", [])
        days = form_text(data, "valid_days")
        draft = intents_service.IntentDraft(
            topic=form_text(data, "topic").strip().lower(), text=form_text(data, "text"),
            budget=form_text(data, "budget"), valid_days=_whole_days(days),
            audience=[ALL] if form_text(data, "to") != "chosen"
            else [chosen] if isinstance(chosen, str) else list(chosen))
        try:
            intent = intents_service.publish(
                db_session, runtime.consent_context(), cipher=runtime.cipher,
                index_key=runtime.keyring.index_key, account_id=customer.id, draft=draft)
        except ValidationFailed as exc:
            db_session.rollback()
            return self._page(customer, db_session, runtime, exc.problems, 400,
                              values={**{k: form_text(data, k) for k in data},
                                      "audience": draft.audience})
        return Redirect(path=f"/intents?published={intent.id}#published", status_code=303)

    @get("/intents/{intent_id:str}/withdraw", sync_to_thread=True)
    def confirm_withdraw(self, intent_id: FromPath[str], customer: Customer,
                         db_session: DbSession, runtime: RuntimeDep) -> Template:
        """The step before withdrawing an intent: which one, and that offers stop."""
        item = next((i for i in intents_service.intents_of(
            db_session, cipher=runtime.cipher, account_id=customer.id,
            now=runtime.clock.now()) if i.intent.id == intent_id and i.state == "open"), None)
        if item is None:
            raise NotFound("You have no such open intent.")
        return Template("intents/confirm_withdraw.html",
                        context={**FORMATTERS, "account": customer, "item": item})

    @post("/intents/{intent_id:str}/withdraw", status_code=303, sync_to_thread=True)
    def withdraw(self, intent_id: FromPath[str], customer: Customer, db_session: DbSession,
                 runtime: RuntimeDep) -> Redirect:
        """No company sees it any more."""
        intents_service.withdraw(db_session, runtime.consent_context(), account_id=customer.id,
                                 intent_id=intent_id)
        return Redirect(path="/intents", status_code=303)

    @post("/offers/{offer_id:str}/accept", status_code=303, sync_to_thread=True)
    def accept(self, offer_id: FromPath[str], customer: Customer, db_session: DbSession,
               runtime: RuntimeDep) -> Redirect:
        """Accept: on to the consent screen, or into the programme."""
        target = intents_service.accept(db_session, runtime.consent_context(),
                                        account_id=customer.id, offer_id=offer_id)
        return Redirect(path=target, status_code=303)

    @post("/offers/{offer_id:str}/decline", status_code=303, sync_to_thread=True)
    def decline(self, offer_id: FromPath[str], data: Form, customer: Customer,
                db_session: DbSession, runtime: RuntimeDep) -> Redirect:
        """Decline; with `block=yes`, never hear from the company again."""
        intents_service.decline(db_session, runtime.consent_context(), account_id=customer.id,
                                offer_id=offer_id, block_company=data.get("block") == "yes")
        return Redirect(path="/inbox", status_code=303)
