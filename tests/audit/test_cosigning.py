"""The vault and a real witness process: each new checkpoint cosigned and published, a witness
that lost track caught up through its 409, and a split view refused by the witness and found
by `cmr-vault audit verify`."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit import transparency, witness_checks
from cmr_vault.audit.checkpoint import parse_verifier_key
from cmr_vault.audit.cosignature import WitnessKey, cosignatures
from cmr_vault.audit.cosigning import Outcome
from cmr_vault.audit.merkle import leaf_hash
from cmr_vault.audit.models import AuditCheckpoint
from cmr_vault.audit.service import AuditEvent
from cmr_vault.audit.signer import cosign_newest, sign_once
from cmr_vault.cli import main
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, get_settings
from tests.audit.witnessing import (
    RunningWitness,
    log_keyring,
    witness,
    witnessed_settings,
)
from tests.conftest import ClockUnderTest

__all__ = ["log_keyring", "witness", "witnessed_settings"]


@pytest.fixture
def settings(witnessed_settings: Settings) -> Settings:
    return witnessed_settings


def _append(session: Session, clock: ClockUnderTest, count: int) -> None:
    for i in range(count):
        audit_service.record(
            session,
            clock=clock,
            event=AuditEvent(
                actor="company:acme",
                action="profile.read",
                subject=f"s{i % 3}",
                resource="profile.email",
                purpose="newsletter",
                outcome="allow",
            ),
        )
    session.commit()


def _tamper(session: Session, sql: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
    session.exec(text(sql))
    session.commit()


def _witness_key(witness: RunningWitness) -> WitnessKey:
    return WitnessKey.parse(witness.verifier_key)


@pytest.fixture
def vault_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`cmr-vault` pointed at the test vault, witnesses included."""
    for name, value in {
        "DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "KEYSTORE_URL": settings.keystore_url,
        "BASE_URL": settings.base_url,
        "WITNESSES": json.dumps(settings.witnesses),
        "WITNESS_MAX_AGE_SECONDS": str(settings.witness_max_age_seconds),
    }.items():
        monkeypatch.setenv(f"CMR_VAULT_{name}", value)
    get_settings.cache_clear()
    return CliRunner()


def test_each_new_checkpoint_is_cosigned_and_published(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
    witness: RunningWitness,
) -> None:
    _append(db_session, clock, 5)
    assert sign_once(runtime) == 5

    published = client.get("/audit/checkpoint")
    assert published.status_code == 200
    assert published.headers["cache-control"] == "public, max-age=5"
    assert published.text.split("\n")[1] == "5"
    assert set(cosignatures(published.text, [_witness_key(witness)])) == {"witness.test/w1"}
    head = client.get("/api/v1/audit/checkpoints/latest").json()
    assert head["tree_size"] == 5
    assert head["cosigned_by"] == ["witness.test/w1"]
    keys = client.get("/api/v1/audit/verifier-key").json()
    assert keys["witness_keys"] == [witness.verifier_key]


def test_a_witness_ahead_of_what_the_vault_knows_is_caught_up_through_its_409(
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
) -> None:
    _append(db_session, clock, 5)
    sign_once(runtime)
    # The vault forgets the cosignature (a lost answer): it will offer the witness old size 0.
    db_session.exec(text("DELETE FROM audit_cosignature"))
    db_session.commit()
    _append(db_session, clock, 4)

    assert sign_once(runtime) == 9

    head = client.get("/api/v1/audit/checkpoints/latest").json()
    assert (head["tree_size"], head["cosigned_by"]) == (9, ["witness.test/w1"])


def _fork_the_log(session: Session, runtime: Runtime) -> None:
    """Rewrite entry 3 with recomputed hashes and re-sign the head of 5 with the vault's key:
    a second history of the same size, which every check inside the database accepts."""
    rows = list(audit_service.iter_entries(session))
    rows[2].outcome = "deny"
    session.expunge_all()
    prev = rows[1].entry_hash
    for entry in rows[2:]:
        entry.prev_hash = prev
        entry.entry_hash = audit_service.chain_hash(prev, entry)
        entry.leaf_hash = leaf_hash(audit_service.leaf_bytes(entry)).hex()
        prev = entry.entry_hash
        _tamper(
            session,
            f"UPDATE audit_entry SET outcome='{entry.outcome}', "
            f"prev_hash='{entry.prev_hash}', entry_hash='{entry.entry_hash}', "
            f"leaf_hash='{entry.leaf_hash}' WHERE seq={entry.seq}",
        )
    _tamper(session, f"UPDATE audit_head SET head_hash='{prev}' WHERE id=1")
    _tamper(session, "DELETE FROM audit_cosignature")
    _tamper(session, "DELETE FROM audit_checkpoint")
    _tamper(session, "DELETE FROM audit_tile")
    runtime.audit_tree.tiles.built_size = 0


def test_a_split_view_is_refused_by_the_witness_and_found_by_audit_verify(
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
    vault_cli: CliRunner,
) -> None:
    _append(db_session, clock, 5)
    sign_once(runtime)
    assert vault_cli.invoke(main, ["audit", "verify"]).exit_code == 0

    _fork_the_log(db_session, runtime)
    forked = transparency.sign_head(
        db_session,
        tree=type(runtime.audit_tree)(),
        seed=runtime.keyring.signing_key,
        origin=runtime.log_origin,
        clock=runtime.clock,
    )
    db_session.commit()
    assert isinstance(forked, AuditCheckpoint) and forked.size == 5

    refused = cosign_newest(runtime)
    assert [r.outcome for r in refused] == [Outcome.REFUSED]

    result = vault_cli.invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert "split view: witness witness.test/w1 cosigned another tree of 5 entries" in " ".join(
        result.output.split()
    )


def _witness_problems(session: Session, runtime: Runtime) -> list[str]:
    """What `audit verify` adds for the configured witnesses, on the test's clock."""
    name, public_key = parse_verifier_key(
        transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin)
    )
    with httpx.Client() as http:
        views, unreachable = witness_checks.fetch_views(
            runtime.witnesses,
            origin=runtime.log_origin,
            log_key=public_key,
            log_key_name=name,
            client=http,
        )
    assert not unreachable
    return witness_checks.witness_problems(
        session,
        witnesses=runtime.witnesses,
        views=views,
        now=runtime.clock.now(),
        max_age=timedelta(seconds=runtime.settings.witness_max_age_seconds),
    )


def test_a_checkpoint_no_witness_cosigned_within_the_max_age_is_refused(
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
) -> None:
    _append(db_session, clock, 3)
    sign_once(runtime)
    assert _witness_problems(db_session, runtime) == []
    _append(db_session, clock, 2)
    transparency.sign_head(
        db_session,
        tree=runtime.audit_tree,
        seed=runtime.keyring.signing_key,
        origin=runtime.log_origin,
        clock=runtime.clock,
    )
    db_session.commit()

    clock.advance(seconds=601)

    assert any(
        "has not cosigned this log within 600 s" in problem
        for problem in _witness_problems(db_session, runtime)
    )
