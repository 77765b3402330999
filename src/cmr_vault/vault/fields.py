"""The profile's fields and the rules each value must meet.

Standard fields have fixed names (they are what company scopes like `profile.email:read`
name). Interests and linked identities are lists; custom fields are `custom.<name>`. Every value
is validated before anything is written, so a bad form changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cmr_vault.accounts.service import validate_email
from cmr_vault.errors import ValidationFailed
from cmr_vault.i18n import N_, gettext

MAX_VALUE = 500
MAX_LIST_ITEMS = 50
MAX_CUSTOM_FIELDS = 30
CUSTOM_PREFIX = "custom."
CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TOPIC = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,39}$")
PHONE = re.compile(r"^\+?[0-9 ()./-]{5,30}$")
LOCALE = re.compile(r"^[a-z]{2,3}(?:-[A-Z]{2})?$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
IDENTITY_KINDS = (
    "email",
    "phone",
    "mastodon",
    "bluesky",
    "github",
    "linkedin",
    "x",
    "instagram",
    "loyalty",
    "customer-number",
    "other",
)


def _text(value: str) -> str:
    return value


def _email(value: str) -> str:
    return validate_email(value)


def _phone(value: str) -> str:
    if not PHONE.match(value):
        raise ValueError(gettext("use digits, spaces and an optional leading +"))
    return value


def _birth_date(value: str) -> str:
    try:
        born = date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(gettext("use the form YYYY-MM-DD")) from exc
    if born >= date.today() or born.year < 1900:
        raise ValueError(gettext("must be a past date after 1900"))
    return born.isoformat()


def _locale(value: str) -> str:
    if not LOCALE.match(value):
        raise ValueError(gettext("use a language tag such as de or de-DE"))
    return value


def _country(value: str) -> str:
    value = value.upper()
    if not COUNTRY.match(value):
        raise ValueError(gettext("use a two-letter country code such as DE"))
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name that is a directory of the zone database ("America") or too long
        # for a file name reaches the file system before zoneinfo can say it is unknown.
        raise ValueError(gettext("use a time zone name such as Europe/Berlin")) from exc
    return value


@dataclass(frozen=True)
class FieldSpec:
    """A standard field: its label for people and how its value is checked and normalised."""

    name: str
    label: str
    check: Callable[[str], str]


STANDARD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("given_name", N_("Given name"), _text),
    FieldSpec("family_name", N_("Family name"), _text),
    FieldSpec("email", N_("E-mail"), _email),
    FieldSpec("phone", N_("Phone"), _phone),
    FieldSpec("street_address", N_("Street address"), _text),
    FieldSpec("postal_code", N_("Postal code"), _text),
    FieldSpec("locality", N_("City"), _text),
    FieldSpec("country", N_("Country"), _country),
    FieldSpec("birth_date", N_("Birth date"), _birth_date),
    FieldSpec("locale", N_("Language"), _locale),
    FieldSpec("time_zone", N_("Time zone"), _time_zone),
)
STANDARD_BY_NAME = {spec.name: spec for spec in STANDARD_FIELDS}
LIST_FIELDS = ("interests", "identities")
FIELD_NAMES = tuple(STANDARD_BY_NAME) + LIST_FIELDS


def common_time_zones() -> list[str]:
    """Time zone names for the profile form's choices."""
    return sorted(zone for zone in available_timezones() if "/" in zone and "Etc" not in zone)


def is_known_field(name: str) -> bool:
    """Standard, list, or well-formed custom field name."""
    if name.startswith(CUSTOM_PREFIX):
        return bool(CUSTOM_NAME.match(name.removeprefix(CUSTOM_PREFIX)))
    return name in FIELD_NAMES


def _check_interests(values: list[str]) -> str:
    topics = sorted({v.strip().lower() for v in values if v.strip()})
    bad = [t for t in topics if not TOPIC.match(t)]
    if bad:
        raise ValueError(gettext("topics use letters, digits, spaces and dashes (not %(bad)s)")
                         % {"bad": repr(bad[0])})
    if len(topics) > MAX_LIST_ITEMS:
        raise ValueError(gettext("at most %(num)d topics") % {"num": MAX_LIST_ITEMS})
    return json.dumps(topics)


def _check_identities(values: list[dict[str, str]]) -> str:
    if len(values) > MAX_LIST_ITEMS:
        raise ValueError(gettext("at most %(num)d identities") % {"num": MAX_LIST_ITEMS})
    cleaned = []
    for item in values:
        kind, handle = item.get("kind", "").strip(), item.get("handle", "").strip()
        if kind not in IDENTITY_KINDS:
            raise ValueError(
                gettext("unknown identity kind %(kind)s; use one of %(kinds)s")
                % {"kind": repr(kind), "kinds": ", ".join(IDENTITY_KINDS)}
            )
        if not handle or len(handle) > 200:
            raise ValueError(gettext("the %(kind)s handle must have 1 to 200 characters")
                             % {"kind": kind})
        cleaned.append({"kind": kind, "handle": handle})
    return json.dumps(cleaned, ensure_ascii=False)


def normalise_changes(changes: dict[str, object]) -> dict[str, str | None]:
    """Check every change; return storable strings (None = clear the field) or raise with all
    problems at once."""
    problems: dict[str, str] = {}
    cleaned: dict[str, str | None] = {}
    for name, raw in changes.items():
        try:
            cleaned[name] = _normalise_one(name, raw)
        except ValueError as exc:
            problems[name] = str(exc)
        except ValidationFailed as exc:
            problems[name] = next(iter(exc.problems.values()), exc.detail)
    if problems:
        raise ValidationFailed(gettext("Some fields are not valid; nothing was saved."),
                               problems=problems)
    return cleaned


def _normalise_one(name: str, raw: object) -> str | None:
    if not is_known_field(name):
        raise ValueError(f"unknown field {name!r}")
    if name == "interests":
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ValueError("interests must be a list of topics")
        return _check_interests(raw) if raw else None
    if name == "identities":
        if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
            raise ValueError("identities must be a list of {kind, handle}")
        return _check_identities(raw) if raw else None
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(gettext("must be text"))
    value = raw.strip()
    if not value:
        return None
    if len(value) > MAX_VALUE:
        raise ValueError(gettext("at most %(num)d characters") % {"num": MAX_VALUE})
    if "\x00" in value:
        raise ValueError(gettext("contains a NUL character"))
    spec = STANDARD_BY_NAME.get(name)
    return spec.check(value) if spec else value
