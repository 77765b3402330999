"""The shapes of the intents API's answers, for the OpenAPI document and its readers."""

from __future__ import annotations

from typing import TypedDict

from cmr_vault.marketing.schemas import DecisionDocument


class IntentDocument(TypedDict):
    """An open intent as a company sees it: its pairwise subject for the customer."""

    intent_id: str
    subject: str
    topic: str
    text: str
    budget: str | None
    valid_until: str


class IntentList(TypedDict):
    """The open intents this company may see."""

    intents: list[IntentDocument]


class OfferAnswer(TypedDict):
    """An offer or invitation delivered or deferred, with the decision."""

    offer_id: str
    status: str
    not_before: str
    decision: DecisionDocument


class ProgrammeDocument(TypedDict):
    """A programme customers can be invited to."""

    programme_id: str
    kind: str
    name: str


class ValueOfferDocument(TypedDict):
    """What a grant earns the customer; named in authorization requests by its id."""

    value_offer_id: str
    kind: str
    description: str


class FulfilledDocument(TypedDict):
    """The grant whose value was given."""

    grant_id: str
    fulfilled: bool
