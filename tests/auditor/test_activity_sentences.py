"""The customer's activity in plain sentences: names for ids, their own words for their custom
fields, their time zone and language, and never an event code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cmr_vault.audit.actions import PushAction
from cmr_vault.audit.models import AuditEntry
from cmr_vault.auditor.activity import Reading, describe
from cmr_vault.i18n import use_language

CLIENT = "c_-81hqBexample"
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
READING = Reading(company_names={CLIENT: "Daily News"},
                  custom_names={"custom:895bbbe7686f": "shoe_size"},
                  zone=ZoneInfo("Europe/Berlin"))


def _entry(action: str, *, actor: str = "customer:abc", outcome: str = "ok",
           purpose: str = "", resource: str = "", **details: Any) -> AuditEntry:
    return AuditEntry(seq=1, recorded_at=AT, actor=actor, action=action, subject="abc",
                      resource=resource, purpose=purpose, outcome=outcome,
                      details=json.dumps(details), prev_hash="", entry_hash="", leaf_hash="")


def test_a_company_read_names_the_company_the_fields_and_the_purpose() -> None:
    line = describe(_entry("profile.read", actor=f"company:{CLIENT}", outcome="allow",
                           purpose="Send your order receipts",
                           fields=["email", "locality"]), READING)
    assert line.sentence == ("Daily News read your e-mail and city, "
                             "for “Send your order receipts”.")
    assert not line.refused


def test_a_refused_read_says_the_vault_refused() -> None:
    line = describe(_entry("profile.read", actor=f"company:{CLIENT}", outcome="deny",
                           purpose="Ads", fields=["phone"]), READING)
    assert "asked to read your phone" in line.sentence
    assert "the vault refused" in line.sentence
    assert line.refused


def test_a_profile_save_names_only_what_changed_and_custom_fields_by_their_names() -> None:
    line = describe(_entry("profile.updated",
                           fields=["custom:895bbbe7686f", "locality"]), READING)
    assert line.sentence == "You changed your shoe_size and city."


def test_a_custom_field_since_removed_is_said_so_never_shown_as_a_hash() -> None:
    line = describe(_entry("profile.updated", fields=["custom:000000000000"]), READING)
    assert "custom field you have since removed" in line.sentence
    assert "000000000000" not in line.sentence


def test_times_are_in_the_customers_own_time_zone() -> None:
    line = describe(_entry("account.sign-in"), READING)
    assert line.at.utcoffset() is not None
    assert line.at.hour == 10  # 09:00 UTC is 10:00 in Berlin in November
    assert line.sentence == "You signed in."


@pytest.mark.parametrize(("action", "details", "expected"), [
    ("grant.given", {"scopes": ["profile.email:read", "marketing.email"]},
     "You gave Daily News access: read your e-mail and send you messages by e-mail."),
    ("grant.narrowed", {"scopes": ["profile.email:read"], "removed": ["marketing.email"]},
     "You withdrew a permission from Daily News: send you messages by e-mail."),
    ("grant.revoked", {"scopes": []}, "You revoked all of Daily News's access."),
    ("grant.expired", {}, "Daily News's access ran out."),
])
def test_each_connection_change_is_one_sentence(action: str, details: dict[str, Any],
                                                expected: str) -> None:
    line = describe(_entry(action, company=CLIENT, **details), READING)
    assert line.sentence == expected


@pytest.mark.parametrize(("action", "outcome", "expected"), [
    (PushAction.DECIDED, "allow", "the vault accepted it"),
    (PushAction.DECIDED, "deny", "the vault refused it"),
    (PushAction.DECIDED, "defer", "holds it back"),
    (PushAction.DELIVERED, "ok", "reached you by your vault inbox"),
])
def test_a_message_says_what_became_of_it(action: str, outcome: str, expected: str) -> None:
    line = describe(_entry(action, actor=f"company:{CLIENT}", outcome=outcome,
                           company=CLIENT, channel="inbox"), READING)
    assert "Daily News" in line.sentence
    assert expected in line.sentence


@pytest.mark.parametrize("action", [
    "grant.narrowed", "token.issued", "push.checked", "preferences.changed", "intent.seen",
    "something.new", "keys.rotated",
])
def test_no_sentence_shows_an_event_code_or_a_client_id(action: str) -> None:
    line = describe(_entry(action, actor=f"company:{CLIENT}", company=CLIENT,
                           channel="email", scopes=[], removed=[]), READING)
    assert action not in line.sentence
    assert CLIENT not in line.sentence
    assert "dpv:" not in line.sentence


def test_a_company_no_longer_registered_is_not_shown_by_its_id() -> None:
    line = describe(_entry("token.issued", actor="company:c_gone", company="c_gone"), READING)
    assert "c_gone" not in line.sentence
    assert "no longer registered" in line.sentence


def test_the_sentences_are_german_for_a_german_reader() -> None:
    with use_language("de"):
        read = describe(_entry("profile.read", actor=f"company:{CLIENT}", outcome="allow",
                               purpose="Newsletter", fields=["email"]), READING)
        saved = describe(_entry("profile.updated", fields=["locality"]), READING)
    assert read.sentence == "Daily News hat gelesen: E-Mail (Zweck: „Newsletter“)."
    assert saved.sentence == "Sie haben geändert: Ort."
