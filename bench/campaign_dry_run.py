"""A campaign dry run over many subjects on SQLite, facts read from the database.

    python bench/campaign_dry_run.py [--subjects 1000000]

Builds a scratch vault with N customers who all granted one company e-mail marketing; a tenth
opted in (confirmed), a tenth of those set a daily cap, some received messages. Then times
`campaigns.dry_run` over all N pairwise subjects (bulk fact loading, one policy decision per
subject, per-subject results), against the baseline of the policy decisions alone on facts
already in memory. Set-up time is not counted. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from cmr_vault.accounts.models import Account
from cmr_vault.consent.models import Grant
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.migrate import upgrade
from cmr_vault.marketing import campaigns
from cmr_vault.marketing.models import ChannelPreference
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

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PURPOSE = "Tell you about sales"
BATCH = 20_000


def _populate(runtime: Runtime, count: int) -> None:
    with Session(runtime.engine) as session:
        session.add(OAuthClient(
            client_id="c_bench", name="Bench", description="", homepage="https://b.example",
            privacy_policy_url="https://b.example/p", redirect_uris="[]",
            allowed_scopes='["marketing.email"]', notice='{"marketing.email": []}',
            status=ClientStatus.APPROVED, created_at=NOW))
        session.commit()
        for start in range(0, count, BATCH):
            ids = range(start, min(count, start + BATCH))
            session.execute(insert(Account.__table__), [  # type: ignore[attr-defined]
                {"id": f"a{i:031d}", "role": "customer", "email_index": f"{i:064d}",
                 "password_hash": "x", "created_at": NOW} for i in ids])
            session.execute(insert(Grant.__table__), [  # type: ignore[attr-defined]
                {"id": f"g{i:031d}", "account_id": f"a{i:031d}", "client_id": "c_bench",
                 "pairwise_subject": f"s{i:039d}", "scopes": '["marketing.email"]',
                 "purposes": f'{{"marketing.email": ["{PURPOSE}"]}}', "notice_version": 1,
                 "status": "active", "expires_at": None, "created_at": NOW,
                 "updated_at": NOW} for i in ids])
            session.execute(insert(ChannelPreference.__table__), [  # type: ignore[attr-defined]
                {"account_id": f"a{i:031d}", "client_id": "c_bench", "channel": "email",
                 "opted_in": True, "confirmed_at": NOW - timedelta(days=3), "topics": "",
                 "cap_day": 1 if i % 100 == 0 else None, "cap_week": None, "cap_month": None,
                 "quiet_start": None, "quiet_end": None, "paused_until": None,
                 "updated_at": NOW} for i in ids if i % 10 == 0])
            session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp))  # type: ignore[call-arg]
        write_keyring(settings.resolved_key_file, Keyring.generate())
        runtime = Runtime.build(settings)
        upgrade(runtime.engine)
        started = time.perf_counter()
        _populate(runtime, args.subjects)
        print(f"set-up: {args.subjects:,} customers, grants and preferences in "
              f"{time.perf_counter() - started:.0f} s (not counted)")
        subjects = [f"s{i:039d}" for i in range(args.subjects)]
        request = campaigns.CampaignRequest(subjects, "email", "sales", PURPOSE,
                                            "Winter sale", "Half price.")
        policy = runtime.policy.current
        with Session(runtime.engine) as session:
            client = session.get(OAuthClient, "c_bench")
            assert client is not None
            started = time.perf_counter()
            tally, results = campaigns.dry_run(session, cipher=runtime.cipher, policy=policy,
                                               client=client, request=request, now=NOW)
            elapsed = time.perf_counter() - started
        base = DecisionRequest(company="c_bench", subject="", action=Action.PUSH,
                               resource="message", purpose=PURPOSE, time=NOW, channel="email",
                               topic="sales")
        facts = Facts(grant=GrantFacts(True, "active", None, frozenset({"marketing.email"}),
                                       frozenset({PURPOSE})),
                      preferences=ChannelPreferences(opted_in=True,
                                                     confirmed_at=NOW - timedelta(days=3)))
        started = time.perf_counter()
        for _ in range(args.subjects):
            policy.decide(base, facts)
        decisions_only = time.perf_counter() - started
        runtime.dispose()
    print(f"dry run over {len(results):,} subjects: {elapsed:.1f} s "
          f"({elapsed / len(results) * 1e6:.1f} µs/subject); {tally.document()['send']:,} "
          f"would be sent, {tally.refused:,} refused")
    print(f"policy decisions alone on in-memory facts: {decisions_only:.1f} s "
          f"({decisions_only / args.subjects * 1e6:.1f} µs each); the dry run costs "
          f"{elapsed / decisions_only:.1f}× the bare decisions")


if __name__ == "__main__":
    main()
