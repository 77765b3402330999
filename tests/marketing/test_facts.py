"""One facts provider for pushes, campaigns and offers: the single and bulk forms agree, and
what reached the customer counts the same way for every kind of message."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlmodel import Session

from cmr_vault.accounts.models import Account
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.intents.models import Offer
from cmr_vault.marketing import facts, service
from cmr_vault.marketing.models import ALL, Message, MessageStatus
from cmr_vault.policy.facts import Action, DecisionRequest, Facts, GrantFacts
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from tests.factories import make_customer
from tests.oauth.flows import Company, register_company

GRANT = GrantFacts(
    True, "active", None, frozenset({"marketing.email"}), frozenset({"Tell you about sales"})
)


@pytest.fixture
def shop(db_session: Session, runtime: Runtime) -> Company:
    return register_company(db_session, runtime, name="Shop")


@pytest.fixture
def other_shop(db_session: Session, runtime: Runtime) -> Company:
    return register_company(db_session, runtime, name="Other shop")


def _prefer(
    session: Session,
    runtime: Runtime,
    account: Account,
    client_id: str,
    channel: str,
    **settings: object,
) -> None:
    change = {
        "opted_in": True,
        "topics": [],
        "cap_day": None,
        "cap_week": None,
        "cap_month": None,
        "quiet_start": None,
        "quiet_end": None,
        "paused_until": None,
    } | settings
    service.set_preference(
        session,
        runtime.consent_context(),
        cipher=runtime.cipher,
        account_id=account.id,
        change=service.PreferenceChange(client_id=client_id, channel=channel, **change),
    )  # type: ignore[arg-type]
    session.commit()


def _delivered(
    session: Session, account: Account, client_id: str, hours_ago: float, runtime: Runtime
) -> None:
    at = runtime.clock.now() - timedelta(hours=hours_ago)
    session.add(
        Message(
            id=secrets.token_hex(16),
            client_id=client_id,
            account_id=account.id,
            idempotency_key=secrets.token_hex(8),
            channel="email",
            topic="",
            purpose="p",
            sealed_content="",
            status=MessageStatus.DELIVERED,
            not_before=at,
            decision="{}",
            unsubscribe_hash="",
            created_at=at,
            delivered_at=at,
        )
    )
    session.commit()


def _offer(
    session: Session,
    account: Account,
    client_id: str,
    status: str,
    not_before_hours: float,
    runtime: Runtime,
) -> None:
    now = runtime.clock.now()
    session.add(
        Offer(
            id=secrets.token_hex(16),
            client_id=client_id,
            account_id=account.id,
            sealed="",
            consent_request="",
            status=status,
            decision="{}",
            created_at=now - timedelta(hours=2),
            not_before=now + timedelta(hours=not_before_hours),
        )
    )
    session.commit()


def _facts(
    session: Session, runtime: Runtime, account: Account, client_id: str, channel: str = "email"
) -> Facts:
    return facts.attention_facts(
        session,
        cipher=runtime.cipher,
        client_id=client_id,
        channel=channel,
        account_id=account.id,
        grant=GRANT,
        now=runtime.clock.now(),
    )


def test_offers_in_the_inbox_count_toward_the_push_attention_budget(
    db_session: Session,
    runtime: Runtime,
    shop: Company,
    other_shop: Company,
) -> None:
    customer = make_customer(db_session, runtime)
    _delivered(db_session, customer, other_shop.client_id, hours_ago=3, runtime=runtime)
    _offer(db_session, customer, other_shop.client_id, "delivered", -1, runtime)
    _offer(db_session, customer, shop.client_id, "accepted", -30, runtime)
    counters = _facts(db_session, runtime, customer, shop.client_id).counters
    assert (counters.all_day, counters.all_week, counters.company_day, counters.company_week) == (
        2,
        3,
        0,
        1,
    )


def test_a_deferred_offer_counts_once_it_is_due_and_not_before(
    db_session: Session,
    runtime: Runtime,
    shop: Company,
) -> None:
    customer = make_customer(db_session, runtime)
    _offer(db_session, customer, shop.client_id, "deferred", 2, runtime)
    assert _facts(db_session, runtime, customer, shop.client_id, "inbox").counters.all_day == 0
    runtime.clock.advance(hours=3)  # type: ignore[attr-defined]
    assert _facts(db_session, runtime, customer, shop.client_id, "inbox").counters.all_day == 1


def test_refused_offers_and_old_messages_do_not_count(
    db_session: Session,
    runtime: Runtime,
    shop: Company,
) -> None:
    customer = make_customer(db_session, runtime)
    _offer(db_session, customer, shop.client_id, "refused", -1, runtime)
    _delivered(db_session, customer, shop.client_id, hours_ago=31 * 24, runtime=runtime)
    assert _facts(db_session, runtime, customer, shop.client_id).counters.all_month == 0


def test_bulk_decisions_open_only_what_they_look_at_and_agree_with_single_ones(
    db_session: Session,
    runtime: Runtime,
    shop: Company,
) -> None:
    # 22:30 UTC: night in Berlin and Lisbon, morning in Tokyo.
    runtime.clock.move_to(runtime.clock.now().replace(hour=22, minute=30))  # type: ignore[attr-defined]
    zones = ("Europe/Berlin", "Asia/Tokyo", "Europe/Lisbon", "America/Denver")
    customers = [make_customer(db_session, runtime, profile={"time_zone": z}) for z in zones]
    for customer in customers[:2]:
        _prefer(
            db_session,
            runtime,
            customer,
            shop.client_id,
            "sms",
            quiet_start="22:00",
            quiet_end="07:00",
        )
    _prefer(db_session, runtime, customers[2], shop.client_id, "sms", topics=["bikes"])
    _prefer(
        db_session, runtime, customers[3], shop.client_id, "sms", opted_in=False, topics=["cars"]
    )
    now = runtime.clock.now()
    grant = GrantFacts(
        True, "active", None, frozenset({"marketing.sms"}), frozenset({"Tell you about sales"})
    )
    request = DecisionRequest(
        company=shop.client_id,
        subject="",
        action=Action.PUSH,
        resource="message",
        purpose="Tell you about sales",
        time=now,
        channel="sms",
        topic="cars",
    )
    policy = runtime.policy.current
    bulk = facts.decide_many(
        db_session,
        cipher=runtime.cipher,
        policy=policy,
        request=request,
        customers=[facts.Customer(c.id, grant) for c in customers],
        now=now,
    )
    single = [
        policy.decide(
            request,
            facts.attention_facts(
                db_session,
                cipher=runtime.cipher,
                client_id=shop.client_id,
                channel="sms",
                account_id=c.id,
                grant=grant,
                now=now,
            ),
        )
        for c in customers
    ]
    assert bulk == single
    assert [d.rule_ids for d in bulk] == [
        ["push.quiet-hours"],
        ["push.allowed"],
        ["push.topic-not-wanted"],
        ["push.not-opted-in"],
    ]
    assert bulk[0].defer_until == now.replace(day=now.day + 1, hour=6, minute=0)


def test_the_bulk_form_gives_each_customer_the_same_facts_as_the_single_form(
    db_session: Session,
    runtime: Runtime,
    shop: Company,
    other_shop: Company,
) -> None:
    customers = [
        make_customer(db_session, runtime, profile={"time_zone": zone})
        for zone in ("Europe/Berlin", "Asia/Kolkata", "America/Lima")
    ]
    _prefer(
        db_session,
        runtime,
        customers[0],
        shop.client_id,
        "inbox",
        topics=["bikes"],
        cap_day=2,
        quiet_start="21:00",
        quiet_end="08:00",
    )
    _prefer(db_session, runtime, customers[1], shop.client_id, "inbox", cap_week=5)
    _prefer(db_session, runtime, customers[1], ALL, ALL, opted_in=False, cap_day=4)
    _delivered(db_session, customers[2], other_shop.client_id, hours_ago=1, runtime=runtime)
    bulk = facts.attention_facts_many(
        db_session,
        cipher=runtime.cipher,
        client_id=shop.client_id,
        channel="inbox",
        customers=[facts.Customer(c.id, GRANT) for c in customers],
        now=runtime.clock.now(),
    )
    single = [_facts(db_session, runtime, c, shop.client_id, "inbox") for c in customers]
    assert bulk == single
    assert bulk[0].preferences.topics == frozenset({"bikes"})
    assert bulk[0].time_zone == "Europe/Berlin"


def test_an_erased_customers_sealed_topics_refuse_rather_than_open_up(
    db_session: Session,
    runtime: Runtime,
    shop: Company,
) -> None:
    customer = make_customer(db_session, runtime)
    _prefer(db_session, runtime, customer, shop.client_id, "inbox", topics=["bikes"])
    runtime.data_keys.destroy(customer.id, now=runtime.clock.now())
    gathered = _facts(db_session, runtime, customer, shop.client_id, "inbox")
    assert gathered.preferences.opted_in is False
    assert gathered.preferences.topics == frozenset()


def test_bulk_opening_names_no_key_it_cannot_find(runtime: Runtime) -> None:
    cipher: FieldCipher = runtime.cipher
    assert cipher.open_many({("nobody", "time_zone"): b"\x01\x00\x00\x00\x01" + bytes(28)}) == {}


def test_vault_reads_many_sealed_fields_in_one_query(
    db_session: Session,
    runtime: Runtime,
) -> None:
    first = make_customer(db_session, runtime, profile={"time_zone": "Europe/Paris"})
    second = make_customer(db_session, runtime)
    sealed = vault_service.sealed_field_many(
        db_session, cipher=runtime.cipher, account_ids=[first.id, second.id], name="time_zone"
    )
    assert list(sealed) == [first.id]
    assert runtime.cipher.open_many({(first.id, "time_zone"): sealed[first.id]}) == {
        (first.id, "time_zone"): "Europe/Paris"
    }
