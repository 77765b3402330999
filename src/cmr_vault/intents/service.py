"""Intents and the offers that answer them; programme invitations; value offers; blocks.

The customer speaks first: an intent names what they want and who may see it. A company sees
an intent only when the customer chose it, or chose "all" and gave that company
`intents.<topic>` in a grant still in force; never after a block, a withdrawal or the end
date. Its answer (an offer) and its invitations to programmes are decided by the same policy
engine as pushes (attention budget, caps, pauses, quiet hours), and every step is audited.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sqlmodel import Session, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.consent import service as consent_service
from cmr_vault.consent.service import ConsentContext
from cmr_vault.crypto.blind_index import blind_index, subject_pseudonym
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.errors import Forbidden, NotFound, ValidationFailed
from cmr_vault.intents.models import (
    CompanyBlock,
    Intent,
    IntentAudience,
    Offer,
    Programme,
    ValueOffer,
)
from cmr_vault.marketing.facts import attention_facts
from cmr_vault.marketing.models import ALL
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.oauth.scopes import PROGRAMME_KINDS, TOPIC
from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.facts import Action, Decision, DecisionRequest, GrantFacts, Outcome

OPEN, WITHDRAWN = "open", "withdrawn"
MAX_DAYS = 180
VALUE_KINDS = ("points", "discount", "early-access", "other")


def _topic_index(index_key: bytes, topic: str) -> str:
    return blind_index(index_key, "intent-topic", topic)


def _seal(cipher: FieldCipher, account_id: str, field: str, value: dict[str, Any]) -> str:
    return base64.b64encode(cipher.seal_fields(account_id, {field: json.dumps(value)})[field]
                            ).decode()


def _open(cipher: FieldCipher, account_id: str, sealed: dict[str, str]) -> dict[str, Any]:
    opened = cipher.open_fields(account_id, {k: base64.b64decode(v) for k, v in sealed.items()})
    return {k: json.loads(v) for k, v in opened.items()}


def _audit(session: Session, ctx: ConsentContext, *, actor: str, action: str, account_id: str,
           resource: str, details: dict[str, Any], outcome: str = "ok") -> None:
    audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
        actor=actor, action=action, subject=subject_pseudonym(ctx.pseudonym_key, account_id),
        resource=resource, outcome=outcome, details=details))


# --- the customer's intents ------------------------------------------------------------------


@dataclass(frozen=True)
class IntentDraft:
    """What the customer typed on the intent form."""

    topic: str
    text: str
    budget: str
    valid_days: int
    audience: list[str]  # ["*"] for every company holding intents.<topic>, else client ids


def _check(draft: IntentDraft, known: set[str]) -> None:
    problems = {}
    if not TOPIC.fullmatch(draft.topic):
        problems["topic"] = "1 to 32 lower-case letters, digits or '-'"
    if not draft.text.strip() or len(draft.text) > 1000:
        problems["text"] = "1 to 1000 characters"
    if len(draft.budget) > 60:
        problems["budget"] = "up to 60 characters"
    if not 1 <= draft.valid_days <= MAX_DAYS:
        problems["valid_days"] = f"1 to {MAX_DAYS} days"
    if not draft.audience or (draft.audience != [ALL] and not set(draft.audience) <= known):
        problems["audience"] = "everyone you allowed for this topic, or companies you know"
    if problems:
        raise ValidationFailed("The intent is not valid; nothing was published.",
                               problems=problems)


def publish(session: Session, ctx: ConsentContext, *, cipher: FieldCipher, index_key: bytes,
            account_id: str, draft: IntentDraft) -> Intent:
    """Publish an intent to the audience the customer chose."""
    known = {c.client_id for c in oauth_service.approved_clients(session)}
    _check(draft, known)
    now = ctx.clock.now()
    intent_id = secrets.token_hex(16)
    intent = Intent(
        id=intent_id, account_id=account_id, topic_index=_topic_index(index_key, draft.topic),
        sealed=_seal(cipher, account_id, f"intent:{intent_id}",
                     {"topic": draft.topic, "text": draft.text.strip(),
                      "budget": draft.budget.strip()}),
        audience="all" if draft.audience == [ALL] else "chosen", status=OPEN,
        valid_until=now + timedelta(days=draft.valid_days), created_at=now)
    session.add(intent)
    session.flush()
    if intent.audience == "chosen":
        session.add_all([IntentAudience(intent_id=intent.id, client_id=c)
                         for c in sorted(set(draft.audience))])
    _audit(session, ctx, actor=f"customer:{subject_pseudonym(ctx.pseudonym_key, account_id)}",
           action="intent.published", account_id=account_id, resource=f"intent:{intent.id}",
           details={"audience": intent.audience, "valid_until": intent.valid_until.isoformat(),
                    "companies": sorted(set(draft.audience) - {ALL})})
    return intent


def withdraw(session: Session, ctx: ConsentContext, *, account_id: str, intent_id: str) -> None:
    """No company sees the intent any more, and no new offer may answer it."""
    intent = session.get(Intent, intent_id)
    if intent is None or intent.account_id != account_id:
        raise NotFound("You have no such intent.")
    intent.status = WITHDRAWN
    session.add(intent)
    _audit(session, ctx, actor=f"customer:{subject_pseudonym(ctx.pseudonym_key, account_id)}",
           action="intent.withdrawn", account_id=account_id, resource=f"intent:{intent.id}",
           details={})


@dataclass(frozen=True)
class CustomerIntent:
    """An intent as its author sees it, with the offers that answered it."""

    intent: Intent
    content: dict[str, Any]
    state: str
    offers: int


def intents_of(session: Session, *, cipher: FieldCipher, account_id: str,
               now: datetime) -> list[CustomerIntent]:
    """The customer's own intents, newest first."""
    rows = session.exec(select(Intent).where(Intent.account_id == account_id)
                        .order_by(col(Intent.created_at).desc())).all()
    if not rows:
        return []
    opened = _open(cipher, account_id, {f"intent:{i.id}": i.sealed for i in rows})
    counts = {i.id: len(session.exec(select(Offer.id).where(Offer.intent_id == i.id)).all())
              for i in rows}
    return [CustomerIntent(i, opened[f"intent:{i.id}"], _state(i, now), counts[i.id])
            for i in rows]


def export_intents(session: Session, *, cipher: FieldCipher, account_id: str,
                   now: datetime) -> dict[str, Any]:
    """The customer's intents (with the companies each was shown to), every offer and
    invitation companies sent them in whatever state, and the companies they blocked."""
    intents = session.exec(select(Intent).where(Intent.account_id == account_id)
                           .order_by(col(Intent.created_at).desc())).all()
    offers = session.exec(select(Offer).where(Offer.account_id == account_id)
                          .order_by(col(Offer.created_at).desc())).all()
    opened = _open(cipher, account_id, {f"intent:{i.id}": i.sealed for i in intents}
                   | {f"offer:{o.id}": o.sealed for o in offers})
    chosen = {i.id: sorted(session.exec(select(IntentAudience.client_id).where(
        IntentAudience.intent_id == i.id)).all()) for i in intents if i.audience == "chosen"}
    blocks = session.exec(select(CompanyBlock).where(CompanyBlock.account_id == account_id)
                          .order_by(col(CompanyBlock.created_at))).all()
    return {
        "intents": [{
            "id": i.id, "created_at": i.created_at.isoformat(),
            "valid_until": i.valid_until.isoformat(), "state": _state(i, now),
            "audience": i.audience, "companies": chosen.get(i.id, []),
            **opened[f"intent:{i.id}"],
        } for i in intents],
        "offers": [{
            "id": o.id, "company": o.client_id, "kind": "offer" if o.intent_id else "invitation",
            "intent": o.intent_id, "programme": o.programme_id, "status": o.status,
            "created_at": o.created_at.isoformat(),
            "answered_at": o.answered_at.isoformat() if o.answered_at else None,
            **opened[f"offer:{o.id}"],
        } for o in offers],
        "blocked_companies": [{"company": b.client_id, "since": b.created_at.isoformat()}
                              for b in blocks],
    }


def _state(intent: Intent, now: datetime) -> str:
    if intent.status == OPEN and intent.valid_until <= now:
        return "expired"
    return intent.status


def blocked(session: Session, account_id: str, client_id: str) -> bool:
    """Whether the customer blocked this company."""
    return session.get(CompanyBlock, (account_id, client_id)) is not None


# --- the company's view ------------------------------------------------------------------


@dataclass(frozen=True)
class VisibleIntent:
    """An intent as a company sees it: its own pseudonym for the customer, nothing more."""

    intent: Intent
    subject: str
    content: dict[str, Any]


def _visible_rows(session: Session, client: OAuthClient, index_key: bytes,
                  now: datetime) -> list[Intent]:
    chosen = session.exec(
        select(Intent).join(IntentAudience, col(IntentAudience.intent_id) == col(Intent.id))
        .where(IntentAudience.client_id == client.client_id)).all()
    for_all = []
    for grant in consent_service.grants_of_client(session, client_id=client.client_id):
        if not consent_service.is_usable(grant, now):
            continue
        topics = [s.removeprefix("intents.") for s in consent_service.scopes_of(grant)
                  if s.startswith("intents.")]
        if topics:
            for_all += session.exec(select(Intent).where(
                Intent.account_id == grant.account_id, Intent.audience == "all",
                col(Intent.topic_index).in_([_topic_index(index_key, t) for t in topics]))).all()
    return [i for i in {i.id: i for i in [*chosen, *for_all]}.values()
            if i.status == OPEN and i.valid_until > now
            and not blocked(session, i.account_id, client.client_id)]


def visible_to(session: Session, ctx: ConsentContext, *, cipher: FieldCipher, index_key: bytes,
               client: OAuthClient) -> list[VisibleIntent]:
    """Every open intent this company may see, each sighting audited (it is a disclosure)."""
    now = ctx.clock.now()
    result = []
    for intent in sorted(_visible_rows(session, client, index_key, now),
                         key=lambda i: i.created_at):
        content = _open(cipher, intent.account_id,
                        {f"intent:{intent.id}": intent.sealed})[f"intent:{intent.id}"]
        subject = oauth_service.subject_for(ctx.pseudonym_key, client, intent.account_id)
        result.append(VisibleIntent(intent, subject, content))
        _audit(session, ctx, actor=f"company:{client.client_id}", action="intent.seen",
               account_id=intent.account_id, resource=f"intent:{intent.id}",
               details={"company": client.client_id})
    return result


# --- offers and invitations ----------------------------------------------------------------


@dataclass(frozen=True)
class OfferDraft:
    """A company's offer or invitation: what it says and, optionally, what accepting starts."""

    title: str
    body: str
    value: str
    consent_request: str


def _check_offer(draft: OfferDraft, client: OAuthClient) -> None:
    problems = {}
    if not draft.title.strip() or len(draft.title) > 200:
        problems["title"] = "1 to 200 characters"
    if not draft.body.strip() or len(draft.body) > 4000:
        problems["body"] = "1 to 4000 characters"
    if len(draft.value) > 200:
        problems["value"] = "up to 200 characters"
    if draft.consent_request:
        why = _consent_request_problem(draft.consent_request, client)
        if why:
            problems["consent_request"] = why
    if problems:
        raise ValidationFailed("The offer is not valid; nothing was sent.", problems=problems)


def _consent_request_problem(query: str, client: OAuthClient) -> str | None:
    """An accept link must be this vault's authorization request, for this very company."""
    text = query.removeprefix("/oauth/authorize").removeprefix("?")
    if "://" in text or text.startswith("/"):
        return "give the query string of an authorization request (response_type=code&…)"
    params = parse_qs(text, keep_blank_values=True)
    if params.get("client_id") != [client.client_id]:
        return "the authorization request must be for your own client_id"
    if params.get("response_type") != ["code"] or "code_challenge" not in params:
        return "an authorization code request with PKCE (code_challenge) is required"
    return None


def _submit(session: Session, ctx: ConsentContext, *, policy: PolicySet, cipher: FieldCipher,
            client: OAuthClient, account_id: str, draft: OfferDraft, kind: str,
            intent_id: str | None = None, programme_id: str | None = None
            ) -> tuple[Offer, Decision]:
    _check_offer(draft, client)
    if blocked(session, account_id, client.client_id):
        raise Forbidden("The customer does not accept anything from this company.")
    now = ctx.clock.now()
    subject = oauth_service.subject_for(ctx.pseudonym_key, client, account_id)
    request = DecisionRequest(company=client.client_id, subject=subject, action=Action.OFFER,
                              resource=kind, purpose=kind, time=now, channel="inbox")
    # Offers need no grant (the customer asked for them, or the invitation checked one):
    # what guards the customer's attention is the inbox's preferences, caps and budget.
    decision = policy.decide(request, attention_facts(
        session, cipher=cipher, client_id=client.client_id, channel="inbox",
        account_id=account_id, grant=GrantFacts(), now=now))
    offer_id = secrets.token_hex(16)
    status = {Outcome.ALLOW: "delivered", Outcome.DEFER: "deferred"}.get(decision.outcome,
                                                                        "refused")
    offer = Offer(
        id=offer_id, client_id=client.client_id, account_id=account_id, intent_id=intent_id,
        programme_id=programme_id,
        sealed=_seal(cipher, account_id, f"offer:{offer_id}",
                     {"title": draft.title.strip(), "body": draft.body.strip(),
                      "value": draft.value.strip()}),
        consent_request=draft.consent_request.removeprefix("/oauth/authorize").removeprefix("?"),
        status=status,
        not_before=decision.defer_until or now, decision=json.dumps(decision.as_record()),
        created_at=now)
    if status != "refused":
        session.add(offer)
    _audit(session, ctx, actor=f"company:{client.client_id}", action=f"{kind}.sent",
           account_id=account_id, resource=f"offer:{offer_id}", outcome=str(decision.outcome),
           details={"company": client.client_id, "intent": intent_id,
                    "programme": programme_id, **decision.as_record()})
    return offer, decision


def answer_intent(session: Session, ctx: ConsentContext, *, policy: PolicySet,
                  cipher: FieldCipher, index_key: bytes, client: OAuthClient, intent_id: str,
                  draft: OfferDraft) -> tuple[Offer, Decision]:
    """A company's offer for one intent it can see (404 for any other, visible or not)."""
    visible = {i.id: i for i in _visible_rows(session, client, index_key, ctx.clock.now())}
    intent = visible.get(intent_id)
    if intent is None:
        raise NotFound("No such open intent is visible to this company.")
    return _submit(session, ctx, policy=policy, cipher=cipher, client=client,
                   account_id=intent.account_id, draft=draft, kind="offer",
                   intent_id=intent.id)


def create_programme(session: Session, ctx: ConsentContext, *, client: OAuthClient, kind: str,
                     name: str, description: str) -> Programme:
    """A programme the company will invite customers to; its kind must be one it may ask for."""
    scope = f"programmes.{kind}"
    problems = {}
    if kind not in PROGRAMME_KINDS:
        problems["kind"] = f"one of {', '.join(PROGRAMME_KINDS)}"
    elif scope not in json.loads(client.allowed_scopes):
        raise Forbidden(f"{client.name} may not run {PROGRAMME_KINDS[kind]}: {scope} is not "
                        "among its registered scopes.", problems={"kind": "not registered"})
    if not name.strip() or len(name) > 120:
        problems["name"] = "1 to 120 characters"
    if problems:
        raise ValidationFailed("The programme is not valid.", problems=problems)
    programme = Programme(id=secrets.token_hex(16), client_id=client.client_id, kind=kind,
                          name=name.strip(), description=description.strip()[:2000],
                          created_at=ctx.clock.now())
    session.add(programme)
    audit_service.record(session, clock=ctx.clock, event=audit_service.AuditEvent(
        actor=f"company:{client.client_id}", action="programme.created",
        resource=f"programme:{programme.id}", details={"company": client.client_id,
                                                       "kind": kind}))
    return programme


def invite(session: Session, ctx: ConsentContext, *, policy: PolicySet, cipher: FieldCipher,
           client: OAuthClient, programme_id: str, subject: str, draft: OfferDraft
           ) -> tuple[Offer, Decision]:
    """Invite one customer the company has a grant from (by its pairwise subject)."""
    programme = session.get(Programme, programme_id)
    if programme is None or programme.client_id != client.client_id:
        raise NotFound("No such programme for this company.")
    grant = next((g for g in consent_service.grants_of_client(session, client_id=client.client_id)
                  if g.pairwise_subject == subject
                  and consent_service.is_usable(g, ctx.clock.now())), None)
    if grant is None:
        # 403, not 404: the programme exists; what is missing is the customer's permission.
        raise Forbidden("No customer with a grant in force has this subject: invite only "
                        "customers who have granted you.")
    return _submit(session, ctx, policy=policy, cipher=cipher, client=client,
                   account_id=grant.account_id, draft=draft, kind="invitation",
                   programme_id=programme.id)


# --- the customer's answers ---------------------------------------------------------------


@dataclass(frozen=True)
class InboxOffer:
    """An offer or invitation as the customer sees it."""

    offer: Offer
    content: dict[str, Any]
    company: str
    intent_topic: str
    programme: Programme | None


def offers_for(session: Session, *, cipher: FieldCipher, account_id: str,
               now: datetime) -> list[InboxOffer]:
    """Offers and invitations due by now, from companies not blocked, newest first."""
    rows = [o for o in session.exec(
        select(Offer).where(Offer.account_id == account_id,
                            col(Offer.status).in_(("delivered", "deferred", "accepted",
                                                   "declined")),
                            col(Offer.not_before) <= now)
        .order_by(col(Offer.created_at).desc()).limit(100)).all()
        if not blocked(session, account_id, o.client_id)]
    if not rows:
        return []
    sealed = {f"offer:{o.id}": o.sealed for o in rows}
    intents = {i.id: i for i in session.exec(select(Intent).where(
        col(Intent.id).in_([o.intent_id for o in rows if o.intent_id]))).all()}
    sealed |= {f"intent:{i.id}": i.sealed for i in intents.values()}
    opened = _open(cipher, account_id, sealed)
    return [InboxOffer(
        o, opened[f"offer:{o.id}"], oauth_service.get_client(session, o.client_id).name,
        opened[f"intent:{o.intent_id}"]["topic"] if o.intent_id in intents else "",
        session.get(Programme, o.programme_id) if o.programme_id else None) for o in rows]


def _customers_offer(session: Session, account_id: str, offer_id: str, now: datetime) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None or offer.account_id != account_id or offer.not_before > now:
        raise NotFound("You have no such offer.")
    return offer


def accept(session: Session, ctx: ConsentContext, *, account_id: str, offer_id: str) -> str:
    """Accept an offer or invitation; returns where the browser goes next.

    An offer with a consent request goes to the consent screen (nothing is shared until the
    customer approves there); an invitation adds the programme's scope to the grant, through
    the same consent records, receipts and company events as any other change.
    """
    now = ctx.clock.now()
    offer = _customers_offer(session, account_id, offer_id, now)
    offer.status, offer.answered_at = "accepted", now
    session.add(offer)
    _audit(session, ctx, actor=f"customer:{subject_pseudonym(ctx.pseudonym_key, account_id)}",
           action="offer.accepted", account_id=account_id, resource=f"offer:{offer.id}",
           details={"company": offer.client_id, "kind": "invitation" if offer.programme_id
                    else "offer"})
    if offer.programme_id:
        _join_programme(session, ctx, offer)
        return "/connections"
    if offer.consent_request:
        return f"/oauth/authorize?{offer.consent_request}"
    return "/inbox?accepted=true"


def _join_programme(session: Session, ctx: ConsentContext, offer: Offer) -> None:
    programme = session.get(Programme, offer.programme_id)
    assert programme is not None
    grant = consent_service.grant_between(session, account_id=offer.account_id,
                                          client_id=offer.client_id)
    client = oauth_service.get_client(session, offer.client_id)
    scopes = consent_service.scopes_of(grant) if grant else []
    consent_service.give_consent(
        session, ctx, account_id=offer.account_id, client=client,
        scopes=[*scopes, f"programmes.{programme.kind}"],
        expires_at=grant.expires_at if grant else None)


def decline(session: Session, ctx: ConsentContext, *, account_id: str, offer_id: str,
            block_company: bool) -> None:
    """Decline an offer, and optionally block the company from everything of this kind."""
    now = ctx.clock.now()
    offer = _customers_offer(session, account_id, offer_id, now)
    offer.status, offer.answered_at = "declined", now
    session.add(offer)
    subject = subject_pseudonym(ctx.pseudonym_key, account_id)
    _audit(session, ctx, actor=f"customer:{subject}", action="offer.declined",
           account_id=account_id, resource=f"offer:{offer.id}",
           details={"company": offer.client_id})
    if block_company and not blocked(session, account_id, offer.client_id):
        session.add(CompanyBlock(account_id=account_id, client_id=offer.client_id,
                                 created_at=now))
        _audit(session, ctx, actor=f"customer:{subject}", action="company.blocked",
               account_id=account_id, resource=f"company:{offer.client_id}",
               details={"company": offer.client_id})


# --- value exchange -----------------------------------------------------------------------


def create_value_offer(session: Session, *, clock: Any, client: OAuthClient, kind: str,
                       description: str) -> ValueOffer:
    """What the company gives for a grant; name it in an authorization request as
    `value_offer=<id>`."""
    problems = {}
    if kind not in VALUE_KINDS:
        problems["kind"] = f"one of {', '.join(VALUE_KINDS)}"
    if not description.strip() or len(description) > 300:
        problems["description"] = "1 to 300 characters"
    if problems:
        raise ValidationFailed("The value offer is not valid.", problems=problems)
    offer = ValueOffer(id=secrets.token_hex(16), client_id=client.client_id, kind=kind,
                       description=description.strip(), created_at=clock.now())
    session.add(offer)
    return offer


def value_offer_for(session: Session, client_id: str, value_offer_id: str) -> ValueOffer | None:
    """The company's own value offer by id (another company's is never shown)."""
    found = session.get(ValueOffer, value_offer_id) if value_offer_id else None
    return found if found is not None and found.client_id == client_id else None


def fulfil(session: Session, ctx: ConsentContext, *, client_id: str, grant_id: str) -> None:
    """The company says it gave what it promised for the grant."""
    grant = consent_service.get_grant(session, grant_id)
    if grant is None or grant.client_id != client_id or grant.value_offer_id is None:
        raise NotFound("No grant of this company carries a value offer.")
    if grant.value_fulfilled_at is None:
        grant.value_fulfilled_at = ctx.clock.now()
        session.add(grant)
        _audit(session, ctx, actor=f"company:{client_id}", action="value.fulfilled",
               account_id=grant.account_id, resource=f"grant:{grant.id}",
               details={"company": client_id, "value_offer": grant.value_offer_id})


def audience_of(session: Session, *, account_id: str, intent_id: str, topic: str,
                now: datetime) -> list[OAuthClient]:
    """The companies that can see one of the customer's intents now: those they chose, or
    every company whose active grant covers the topic; never one they blocked. Said on the
    page after publishing, so nobody publishes without knowing who reads it."""
    intent = session.get(Intent, intent_id)
    if intent is None or intent.account_id != account_id:
        raise NotFound("You have no such intent.")
    if intent.audience == "chosen":
        client_ids = set(session.exec(select(IntentAudience.client_id).where(
            IntentAudience.intent_id == intent.id)).all())
    else:
        client_ids = {c.company.client_id
                      for c in consent_service.connections(session, account_id=account_id,
                                                           now=now)
                      if consent_service.is_usable(c.grant, now)
                      and f"intents.{topic}" in consent_service.scopes_of(c.grant)}
    return sorted((oauth_service.get_client(session, c) for c in client_ids
                   if not blocked(session, account_id, c)), key=lambda c: c.name.lower())
