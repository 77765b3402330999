"""Turning HTML form posts into service inputs, and back into form values.

Lists are edited as text (one item per line) so the portal works without JavaScript; errors
name the line that is wrong.
"""

from __future__ import annotations

from typing import Any

from cmr_vault.errors import ValidationFailed
from cmr_vault.i18n import gettext
from cmr_vault.vault.fields import CUSTOM_PREFIX, STANDARD_FIELDS
from cmr_vault.vault.service import Profile

MAX_FORM_LINES = 60


def form_text(data: dict[str, Any], name: str) -> str:
    """One text value from a parsed form (the last one if a field was sent twice)."""
    value = data.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value)


def _pairs(text: str, field: str, what: str) -> list[tuple[str, str]]:
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    if len(lines) > MAX_FORM_LINES:
        raise ValidationFailed(gettext("Too many lines."), problems={
            field: gettext("at most %(num)d lines") % {"num": MAX_FORM_LINES}})
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise ValidationFailed(
                gettext("Some fields are not valid; nothing was saved."),
                problems={field: gettext("line %(number)d: write it as “%(form)s”")
                          % {"number": number, "form": what}},
            )
        pairs.append((key.strip(), value.strip()))
    return pairs


def profile_changes(data: dict[str, Any], current: Profile) -> dict[str, Any]:
    """Every field the form edits, as a change set (custom fields removed from the text go)."""
    changes: dict[str, Any] = {spec.name: form_text(data, spec.name) for spec in STANDARD_FIELDS}
    changes["interests"] = [t for t in form_text(data, "interests").split(",") if t.strip()]
    changes["identities"] = [
        {"kind": kind.lower(), "handle": handle}
        for kind, handle in _pairs(form_text(data, "identities"), "identities", "kind: handle")
    ]
    custom = dict(_pairs(form_text(data, "custom"), "custom", "name: value"))
    for name in current.custom:
        changes[CUSTOM_PREFIX + name] = None
    for name, value in custom.items():
        changes[CUSTOM_PREFIX + name.lower()] = value
    return changes


def profile_form_values(profile: Profile) -> dict[str, str]:
    """The profile as the strings its edit form shows."""
    values = dict(profile.standard)
    values["interests"] = ", ".join(profile.interests)
    values["identities"] = "\n".join(f"{i['kind']}: {i['handle']}" for i in profile.identities)
    values["custom"] = "\n".join(f"{k}: {v}" for k, v in sorted(profile.custom.items()))
    return values
