"""RFC 9396 Rich Authorization Requests: the vault's one `authorization_details` type.

A company may say precisely what it wants instead of (or beside) scopes::

    [{"type": "urn:cmr-vault:profile-access",
      "fields": ["email", "given_name"], "channels": ["email"],
      "purposes": ["Send your order receipts"], "expires_at": "2027-06-30T00:00:00Z"}]

Each field is `profile.<field>:read` and each channel `marketing.<channel>`, so everything
downstream (consent screen, policy, resource API) keeps working on scopes; what the details
add is narrower purposes (only those named, each one declared in the company's notice for
the item's scopes) and an end date the grant may not outlive. Anything not understood is
refused with `invalid_authorization_details` (§5): an unknown type, member, field, channel
or purpose. Tokens carry the details the customer approved, echoed in the token response and
in introspection (§7, §9); a later token request may ask for less, never for more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError

from cmr_vault.consent import service as consent_service
from cmr_vault.oauth.scopes import CHANNELS, marketing_scope, read_scope
from cmr_vault.vault.fields import FIELD_NAMES

DETAILS_TYPE = "urn:cmr-vault:profile-access"
MEMBERS = {"type", "fields", "channels", "purposes", "expires_at"}
MAX_ITEMS = 10
MAX_LENGTH = 8192


class InvalidAuthorizationDetailsError(OAuth2Error):
    """RFC 9396 §5: the details are malformed, of an unknown type, or ask for the unknown."""

    error = "invalid_authorization_details"
    status_code = 400


@dataclass(frozen=True)
class AccessDetail:
    """One authorization details object of the vault's type, validated."""

    fields: tuple[str, ...]
    channels: tuple[str, ...]
    purposes: tuple[str, ...]
    expires_at: datetime | None

    @property
    def scopes(self) -> list[str]:
        """The scopes this item stands for."""
        return [read_scope(f) for f in self.fields] + [marketing_scope(c) for c in self.channels]

    def as_json(self) -> dict[str, Any]:
        """The item as the company sent it (and as it is echoed back)."""
        item: dict[str, Any] = {"type": DETAILS_TYPE}
        if self.fields:
            item["fields"] = list(self.fields)
        if self.channels:
            item["channels"] = list(self.channels)
        item["purposes"] = list(self.purposes)
        if self.expires_at is not None:
            item["expires_at"] = self.expires_at.isoformat().replace("+00:00", "Z")
        return item

    def within(self, granted: AccessDetail) -> bool:
        """Whether this item asks for nothing `granted` does not allow."""
        return (
            set(self.fields) <= set(granted.fields)
            and set(self.channels) <= set(granted.channels)
            and set(self.purposes) <= set(granted.purposes)
            and (
                granted.expires_at is None
                or (self.expires_at is not None and self.expires_at <= granted.expires_at)
            )
        )


def _strings(
    item: dict[str, Any], member: str, allowed: set[str] | dict[str, str]
) -> tuple[str, ...]:
    values = item.get(member, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidAuthorizationDetailsError(f"{member} must be a list of strings.")
    # The unknown values are not echoed: an error description may not carry every character.
    if any(v not in allowed for v in values):
        raise InvalidAuthorizationDetailsError(
            f"{member} names something the vault does not know for this company."
        )
    return tuple(dict.fromkeys(values))


def _expiry(item: dict[str, Any], now: datetime) -> datetime | None:
    raw = item.get("expires_at")
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidAuthorizationDetailsError("expires_at must be an RFC 3339 date and time.")
    if when <= now:
        raise InvalidAuthorizationDetailsError("expires_at is in the past.")
    return when


def _item(item: Any, notice: dict[str, list[str]], now: datetime) -> AccessDetail:
    if not isinstance(item, dict):
        raise InvalidAuthorizationDetailsError("Each authorization detail must be an object.")
    if item.get("type") != DETAILS_TYPE:
        raise InvalidAuthorizationDetailsError(f"The only type supported is {DETAILS_TYPE}.")
    if set(item) - MEMBERS:
        raise InvalidAuthorizationDetailsError(
            f"Each detail may hold only {', '.join(sorted(MEMBERS))}."
        )
    detail = AccessDetail(
        fields=_strings(item, "fields", set(FIELD_NAMES)),
        channels=_strings(item, "channels", CHANNELS),
        purposes=_strings(item, "purposes", {p for ps in notice.values() for p in ps}),
        expires_at=_expiry(item, now),
    )
    if not detail.scopes or not detail.purposes:
        raise InvalidAuthorizationDetailsError(
            "Name at least one field or channel, and the purposes."
        )
    for scope in detail.scopes:
        if scope not in notice:
            raise InvalidAuthorizationDetailsError(f"{scope} is not among the company's scopes.")
        if not set(detail.purposes) & set(notice[scope]):
            raise InvalidAuthorizationDetailsError(
                f"None of the purposes is declared for {scope} in the company's notice."
            )
    return detail


def parse(raw: str, *, notice: dict[str, list[str]], now: datetime) -> list[AccessDetail]:
    """Validate an `authorization_details` parameter against the company's notice."""
    if len(raw) > MAX_LENGTH:
        raise InvalidAuthorizationDetailsError("authorization_details is too long.")
    try:
        items = json.loads(raw)
    except ValueError:
        raise InvalidAuthorizationDetailsError("authorization_details is not JSON.") from None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidAuthorizationDetailsError(
            f"authorization_details must be a JSON array of 1 to {MAX_ITEMS} objects."
        )
    return [_item(item, notice, now) for item in items]


def to_json(details: list[AccessDetail]) -> str | None:
    """The stored form (None when the company asked with scopes alone)."""
    return json.dumps([d.as_json() for d in details]) if details else None


def from_json(stored: str | None) -> list[AccessDetail]:
    """Stored details back as objects (they were validated when stored)."""
    return [
        AccessDetail(
            fields=tuple(item.get("fields", [])),
            channels=tuple(item.get("channels", [])),
            purposes=tuple(item["purposes"]),
            expires_at=datetime.fromisoformat(item["expires_at"]) if "expires_at" in item else None,
        )
        for item in json.loads(stored or "[]")
    ]


def purposes_by_scope(
    details: list[AccessDetail], notice: dict[str, list[str]]
) -> dict[str, list[str]]:
    """For each scope the details name: the named purposes its notice declares."""
    purposes: dict[str, list[str]] = {}
    for detail in details:
        for scope in detail.scopes:
            for purpose in detail.purposes:
                if purpose in notice.get(scope, []) and purpose not in purposes.get(scope, []):
                    purposes.setdefault(scope, []).append(purpose)
    return purposes


def approved(
    details: list[AccessDetail], chosen: list[str], notice: dict[str, list[str]]
) -> list[AccessDetail]:
    """What the customer approved: each item without the fields and channels left unticked,
    and without the purposes the notice declares for none of what is left (an item with no
    field or channel left is dropped)."""
    kept = []
    for detail in details:
        narrowed = AccessDetail(
            fields=tuple(f for f in detail.fields if read_scope(f) in chosen),
            channels=tuple(c for c in detail.channels if marketing_scope(c) in chosen),
            purposes=detail.purposes,
            expires_at=detail.expires_at,
        )
        declared = {p for scope in narrowed.scopes for p in notice.get(scope, [])}
        purposes = tuple(p for p in detail.purposes if p in declared)
        if narrowed.scopes:
            kept.append(
                AccessDetail(narrowed.fields, narrowed.channels, purposes, narrowed.expires_at)
            )
    return kept


def earliest_end(details: list[AccessDetail], chosen_end: datetime | None) -> datetime | None:
    """The grant's end: the customer's choice, brought forward to the earliest item's end."""
    ends = [d.expires_at for d in details if d.expires_at is not None]
    if chosen_end is not None:
        ends.append(chosen_end)
    return min(ends) if ends else None


class RichAuthorizationRequest:
    """An authlib grant extension for /authorize (and PAR): validate the details, and add the
    scopes they stand for to the request, so the consent screen shows every item."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("before_validate_authorization_request_payload", self.expand)

    def expand(self, grant: Any, _redirect_uri: str) -> None:
        request = grant.request
        raw = request.payload.datalist.get("authorization_details", [])
        request.authorization_details = []
        if not raw:
            return
        if len(raw) > 1:
            raise InvalidRequestError("authorization_details was sent more than once.")
        notice = json.loads(request.client.row.notice)
        details = parse(raw[0], notice=notice, now=grant.server.clock.now())
        request.authorization_details = details
        asked = (request.payload.scope or "").split()
        request.payload.set_scope([*asked, *(s for d in details for s in d.scopes)])


class DetailsInTokens:
    """An authlib grant extension for the token endpoint: the tokens carry what the customer
    approved, or the narrower details the request asks for; asking for more is refused."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("before_create_token_response", self.settle)

    def settle(self, grant: Any) -> None:
        server, request = grant.server, grant.request
        presented = getattr(request, "refresh_token", None) or request.authorization_code
        stored = consent_service.get_grant(server.session, presented.row.grant_id)
        granted = from_json(stored.authorization_details if stored is not None else None)
        raw = request.payload.data.get("authorization_details")
        if raw is None:
            request.authorization_details = granted
            return
        notice = json.loads(request.client.row.notice)
        asked = parse(raw, notice=notice, now=server.clock.now())
        if not all(any(a.within(g) for g in granted) for a in asked):
            raise InvalidAuthorizationDetailsError(
                "The request asks for more than the customer approved."
            )
        request.authorization_details = asked
