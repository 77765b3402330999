"""What a scope names, and how to say it to a person.

`profile.<field>:read` lets a company read one profile field; `marketing.<channel>` lets it
send on one channel (through the vault, which keeps the address to itself); `intents.<topic>`
lets it see the intents the customer publishes for everyone on that topic and answer them with
offers; `programmes.<kind>` is taking part in one kind of the company's engagement programmes.
Nothing else exists, so a scope list is validated against these shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints

from cmr_vault.errors import ValidationFailed
from cmr_vault.i18n import N_, current_language, gettext
from cmr_vault.patterns import NOT_BLANK, explain
from cmr_vault.vault.fields import FIELD_NAMES, STANDARD_BY_NAME

CHANNELS = {
    "email": N_("e-mail"),
    "sms": N_("text messages (SMS)"),
    "inbox": N_("messages in your vault inbox"),
    "webhook": N_("push notifications to an app"),
}
_LIST_LABELS = {"interests": N_("Interests"), "identities": N_("Linked identities")}
PROGRAMME_KINDS = {
    "product-tests": N_("product tests"),
    "feedback": N_("feedback rounds"),
    "community": N_("its community"),
}
TOPIC = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
SCOPE_NAME = explain(
    rf"^(profile\.({'|'.join(FIELD_NAMES)}):read|marketing\.({'|'.join(CHANNELS)})"
    rf"|intents\.{TOPIC.pattern}|programmes\.({'|'.join(PROGRAMME_KINDS)}))$",
    "must be a scope: profile.<field>:read, marketing.<channel>, intents.<topic> or "
    "programmes.<kind>")

Purpose = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK)]
Notice = Annotated[
    dict[
        Annotated[str, StringConstraints(pattern=SCOPE_NAME)],
        Annotated[list[Purpose], Field(min_length=1, max_length=20)],
    ],
    Field(min_length=1, max_length=50, json_schema_extra={"additionalProperties": False},
          description="Each scope, with the purposes the company asks it for."),
]


@dataclass(frozen=True)
class Scope:
    """One parsed scope: a field read, or a marketing channel."""

    name: str
    kind: str  # "read" | "marketing" | "intent" | "programme"
    target: str  # the field name or the channel

    @property
    def label(self) -> str:
        """The scope in plain words, for the consent screen and the connections page."""
        if self.kind == "read":
            spec = STANDARD_BY_NAME.get(self.target)
            field = gettext(spec.label if spec else _LIST_LABELS.get(self.target, self.target))
            # English writes the label in lower case mid-sentence; German keeps its nouns.
            field = field.lower() if current_language() == "en" else field
            return gettext("Read your %(field)s") % {"field": field}
        if self.kind == "intent":
            return gettext(
                "See what you are looking for about %(topic)s and answer with offers"
            ) % {"topic": self.target}
        if self.kind == "programme":
            return gettext("Invite you to take part in %(programme)s") % {
                "programme": gettext(PROGRAMME_KINDS[self.target])}
        return gettext("Send you %(channel)s") % {"channel": gettext(CHANNELS[self.target])}


def parse_scope(name: str) -> Scope:
    """Parse one scope name, or raise ValueError saying why it is not one."""
    if name.startswith("profile.") and name.endswith(":read"):
        field = name[len("profile.") : -len(":read")]
        if field in FIELD_NAMES:
            return Scope(name, "read", field)
        raise ValueError(f"{name}: no profile field is called {field!r}")
    if name.startswith("marketing."):
        channel = name[len("marketing.") :]
        if channel in CHANNELS:
            return Scope(name, "marketing", channel)
        raise ValueError(f"{name}: channels are {', '.join(CHANNELS)}")
    if name.startswith("intents."):
        topic = name[len("intents.") :]
        if TOPIC.fullmatch(topic):
            return Scope(name, "intent", topic)
        raise ValueError(f"{name}: a topic is 1 to 32 lower-case letters, digits or '-'")
    if name.startswith("programmes."):
        kind = name[len("programmes.") :]
        if kind in PROGRAMME_KINDS:
            return Scope(name, "programme", kind)
        raise ValueError(f"{name}: programme kinds are {', '.join(PROGRAMME_KINDS)}")
    raise ValueError(f"{name}: scopes are profile.<field>:read, marketing.<channel>, "
                     "intents.<topic> or programmes.<kind>")


def parse_scopes(names: list[str] | str) -> list[Scope]:
    """Parse a list (or a space-separated string) of scopes, in order, without duplicates."""
    if isinstance(names, str):
        names = names.split()
    problems, scopes = [], []
    for name in dict.fromkeys(names):
        try:
            scopes.append(parse_scope(name))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValidationFailed("Unknown scopes.", problems={"scope": "; ".join(problems)})
    return scopes


def read_scope(field: str) -> str:
    """The scope that lets a company read `field`."""
    return f"profile.{field}:read"


def marketing_scope(channel: str) -> str:
    """The scope that lets a company send on `channel`."""
    return f"marketing.{channel}"


def all_scopes() -> list[str]:
    """Every scope the vault knows, for server metadata."""
    return ([read_scope(f) for f in FIELD_NAMES] + [marketing_scope(c) for c in CHANNELS]
            + [f"programmes.{kind}" for kind in PROGRAMME_KINDS])
