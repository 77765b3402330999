"""A campaign dry run over a realistic population on SQLite, facts read from the database.

    python bench/campaign_dry_run.py [--subjects 1000000]

Builds a scratch vault with N customers who granted one company e-mail marketing, each with
facts of their own, drawn with a fixed seed:

- a time zone in the profile (sealed), among the ~600 IANA zones;
- 85 % set an e-mail preference for the company: of those 10 % opted out, 40 % chose 1 to 4
  topics among 30 (sealed), 30 % a daily cap, 15 % a weekly cap, 25 % quiet hours;
- 50 % set preferences across all companies: a daily attention budget, 20 % quiet hours;
- 20 % received 1 to 3 messages in the last 30 days (from this company or another), 5 % an
  offer in the inbox; 2 % of the grants are revoked and 1 % expired.

The population is built in a separate process; the dry run is then timed in this one (bulk
facts per chunk, one policy decision per subject, per-subject results), with its peak RSS, against
the baseline of the same number of bare policy decisions on in-memory facts, in the same run.
Set-up time is not counted. Printed, never asserted: the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import multiprocessing
import random
import resource
import secrets
import tempfile
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from cmr_vault.accounts.models import Account
from cmr_vault.consent.models import Grant
from cmr_vault.crypto.data_keys import DataKey
from cmr_vault.crypto.field_cipher import _seal, name_aad, seal
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.migrate import upgrade
from cmr_vault.intents.models import Offer
from cmr_vault.marketing import campaigns
from cmr_vault.marketing.facts import topics_field
from cmr_vault.marketing.models import ALL, ChannelPreference, Message
from cmr_vault.oauth.models import ClientStatus, OAuthClient
from cmr_vault.policy.facts import (
    Action,
    ChannelPreferences,
    DecisionRequest,
    Facts,
    GrantFacts,
)
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from cmr_vault.vault.models import ProfileField

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PURPOSE = "Tell you about sales"
BATCH = 5_000
TOPICS = [f"topic-{i}" for i in range(30)]
ZONES = sorted(zoneinfo.available_timezones())


def _settings(folder: Path) -> Settings:
    return Settings(_env_file=None, data_dir=folder)  # type: ignore[call-arg]


def _client(client_id: str) -> OAuthClient:
    return OAuthClient(
        client_id=client_id,
        name=client_id,
        description="",
        homepage="https://b.example",
        privacy_policy_url="https://b.example/p",
        redirect_uris="[]",
        allowed_scopes='["marketing.email"]',
        notice='{"marketing.email": []}',
        status=ClientStatus.APPROVED,
        created_at=NOW,
    )


def _topics(key: DataKey, chosen: list[str]) -> str:
    """Sealed the way `marketing.service.seal_topics` seals them."""
    return base64.b64encode(
        seal(key, topics_field("c_bench", "email"), json.dumps(chosen))
    ).decode()


def _populate(folder: Path, count: int) -> None:
    """Every row a real vault would hold for these facts, sealed under each customer's key."""
    runtime = Runtime.build(_settings(folder))
    upgrade(runtime.engine)
    runtime.data_keys.create_schema()
    rng = random.Random(15)
    cipher, keys = runtime.cipher, runtime.data_keys
    with Session(runtime.engine) as session:
        session.add_all([_client("c_bench"), _client("c_other")])
        session.commit()
        for start in range(0, count, BATCH):
            ids = [f"a{i:031d}" for i in range(start, min(count, start + BATCH))]
            keys.create_many(ids)
            opened = keys.for_decryption_many((i, 1) for i in ids)
            accounts, grants, fields, prefs, messages, offers = [], [], [], [], [], []
            for n, account_id in enumerate(ids, start=start):
                key = opened[(account_id, 1)]
                accounts.append(
                    {
                        "id": account_id,
                        "role": "customer",
                        "email_index": f"{n:064d}",
                        "password_hash": "x",
                        "created_at": NOW,
                    }
                )
                draw = rng.random()
                status = "revoked" if draw < 0.02 else "active"
                grants.append(
                    {
                        "id": f"g{n:031d}",
                        "account_id": account_id,
                        "client_id": "c_bench",
                        "pairwise_subject": f"s{n:039d}",
                        "scopes": '["marketing.email"]',
                        "purposes": json.dumps({"marketing.email": [PURPOSE]}),
                        "notice_version": 1,
                        "status": status,
                        "expires_at": NOW - timedelta(days=1) if 0.02 <= draw < 0.03 else None,
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                )
                index = cipher.name_index(account_id, "time_zone")
                fields.append(
                    {
                        "account_id": account_id,
                        "name_index": index,
                        "sealed_name": _seal(key, name_aad(account_id, index, 1), "time_zone"),
                        "sealed": seal(key, "time_zone", rng.choice(ZONES)),
                        "updated_at": NOW,
                    }
                )
                if rng.random() < 0.85:
                    quiet = rng.random() < 0.25
                    chosen = rng.sample(TOPICS, rng.randint(1, 4)) if rng.random() < 0.4 else []
                    prefs.append(
                        {
                            "account_id": account_id,
                            "client_id": "c_bench",
                            "channel": "email",
                            "opted_in": rng.random() >= 0.1,
                            "confirmed_at": NOW - timedelta(days=rng.randint(1, 300)),
                            "topics": _topics(key, chosen) if chosen else "",
                            "cap_day": rng.randint(1, 5) if rng.random() < 0.3 else None,
                            "cap_week": rng.randint(3, 15) if rng.random() < 0.15 else None,
                            "cap_month": None,
                            "quiet_start": f"{rng.randint(20, 23)}:00" if quiet else None,
                            "quiet_end": f"0{rng.randint(6, 8)}:30" if quiet else None,
                            "paused_until": None,
                            "updated_at": NOW,
                        }
                    )
                if rng.random() < 0.5:
                    quiet = rng.random() < 0.2
                    prefs.append(
                        {
                            "account_id": account_id,
                            "client_id": ALL,
                            "channel": ALL,
                            "opted_in": True,
                            "confirmed_at": None,
                            "topics": "",
                            "cap_day": rng.randint(3, 10),
                            "cap_week": None,
                            "cap_month": None,
                            "quiet_start": "22:00" if quiet else None,
                            "quiet_end": "07:00" if quiet else None,
                            "paused_until": None,
                            "updated_at": NOW,
                        }
                    )
                if rng.random() < 0.2:
                    for _ in range(rng.randint(1, 3)):
                        at = NOW - timedelta(hours=rng.randint(1, 700))
                        messages.append(
                            {
                                "id": secrets.token_hex(16),
                                "account_id": account_id,
                                "client_id": rng.choice(("c_bench", "c_other")),
                                "idempotency_key": secrets.token_hex(8),
                                "channel": "email",
                                "topic": "",
                                "purpose": PURPOSE,
                                "sealed_content": "",
                                "status": "delivered",
                                "not_before": at,
                                "decision": "{}",
                                "attempts": 0,
                                "last_error": "",
                                "unsubscribe_hash": "",
                                "created_at": at,
                                "delivered_at": at,
                            }
                        )
                if rng.random() < 0.05:
                    at = NOW - timedelta(hours=rng.randint(1, 200))
                    offers.append(
                        {
                            "id": secrets.token_hex(16),
                            "client_id": "c_other",
                            "account_id": account_id,
                            "sealed": "",
                            "consent_request": "",
                            "status": "delivered",
                            "decision": "{}",
                            "created_at": at,
                            "not_before": at,
                        }
                    )
            for model, rows in (
                (Account, accounts),
                (Grant, grants),
                (ProfileField, fields),
                (ChannelPreference, prefs),
                (Message, messages),
                (Offer, offers),
            ):
                if rows:
                    session.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]
            session.commit()
    runtime.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_keyring(_settings(folder).resolved_key_file, Keyring.generate())
        started = time.perf_counter()
        builder = multiprocessing.get_context("spawn").Process(
            target=_populate, args=(folder, args.subjects)
        )
        builder.start()
        builder.join()
        print(
            f"set-up: {args.subjects:,} customers with their own facts in "
            f"{time.perf_counter() - started:.0f} s (another process, not counted)"
        )
        runtime = Runtime.build(_settings(folder))
        subjects = [f"s{i:039d}" for i in range(args.subjects)]
        request = campaigns.CampaignRequest(
            subjects, "email", "topic-3", PURPOSE, "Winter sale", "Half price."
        )
        policy = runtime.policy.current
        gc.freeze()  # as a `cmr-vault serve` worker does once its app is built
        with Session(runtime.engine) as session:
            client = session.get(OAuthClient, "c_bench")
            assert client is not None
            started = time.perf_counter()
            dry = campaigns.dry_run(
                session,
                cipher=runtime.cipher,
                policy=policy,
                client=client,
                request=request,
                now=NOW,
            )
            # The per-subject answer as the API sends it: part of what a dry run costs.
            results = dry.results()
            elapsed = time.perf_counter() - started
            tally = dry.tally
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        base = DecisionRequest(
            company="c_bench",
            subject="",
            action=Action.PUSH,
            resource="message",
            purpose=PURPOSE,
            time=NOW,
            channel="email",
            topic="topic-3",
        )
        facts = Facts(
            grant=GrantFacts(
                True, "active", None, frozenset({"marketing.email"}), frozenset({PURPOSE})
            ),
            preferences=ChannelPreferences(opted_in=True, confirmed_at=NOW - timedelta(days=3)),
        )
        started = time.perf_counter()
        for _ in range(args.subjects):
            policy.decide(base, facts)
        decisions_only = time.perf_counter() - started
        runtime.dispose()
    document = tally.document()
    print(
        f"dry run over {len(results):,} subjects: {elapsed:.1f} s "
        f"({elapsed / len(results) * 1e6:.1f} µs/subject), peak RSS {peak_mb:.0f} MB; "
        f"send {document['send']:,}, defer {document['defer']:,}, "
        f"refuse {document['refuse']:,}"
    )
    print(f"refused by rule: {document['refused_by_rule']}")
    print(
        f"policy decisions alone on in-memory facts: {decisions_only:.1f} s "
        f"({decisions_only / args.subjects * 1e6:.1f} µs each); the dry run costs "
        f"{elapsed / decisions_only:.1f}× the bare decisions"
    )


if __name__ == "__main__":
    main()
