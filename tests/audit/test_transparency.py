"""Signed heads, proofs, group commit, export and full verification of the live log."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit import transparency
from cmr_vault.audit.checkpoint import parse_verifier_key, verify_checkpoint
from cmr_vault.audit.export import write_jsonl
from cmr_vault.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from cmr_vault.audit.service import AuditEvent
from cmr_vault.audit.verify import read_export, verify, verify_database
from cmr_vault.runtime import Runtime
from tests.conftest import FrozenClock


def _event(i: int) -> AuditEvent:
    return AuditEvent(actor="company:acme", action="profile.read", subject=f"s{i % 4}",
                      resource="profile.email", purpose="newsletter", outcome="allow",
                      details={"fields": ["email"], "rule_ids": ["read.granted"]})


def _append(session: Session, clock: FrozenClock, count: int) -> None:
    for i in range(count):
        audit_service.record(session, clock=clock, event=_event(i))
        clock.advance(seconds=1)
    session.commit()


def _sign(session: Session, runtime: Runtime) -> transparency.AuditCheckpoint:
    head = transparency.sign_head(session, tree=runtime.audit_tree,
                                  seed=runtime.keyring.signing_key,
                                  origin=runtime.log_origin, clock=runtime.clock)
    session.commit()
    return head


def _key(runtime: Runtime) -> str:
    return transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin)


def _tamper(session: Session, sql: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
    session.exec(text(sql))
    session.commit()


def test_signed_head_verifies_with_only_the_public_key(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 7)
    head = _sign(db_session, runtime)
    name, public_key = parse_verifier_key(_key(runtime))
    checkpoint = verify_checkpoint(head.note, public_key, name)
    assert checkpoint.size == 7
    assert checkpoint.root_hash.hex() == head.root_hash


def test_proofs_over_the_api_verify_against_the_signed_head(
    client: TestClient[Litestar], db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 5)
    first = _sign(db_session, runtime)
    _append(db_session, clock, 6)
    second = _sign(db_session, runtime)
    key = client.get("/api/v1/audit/verifier-key").json()["verifier_key"]
    name, public_key = parse_verifier_key(key)
    latest = client.get("/api/v1/audit/checkpoints/latest").json()
    signed = verify_checkpoint(latest["note"], public_key, name)
    assert signed.size == 11

    proof = client.get("/api/v1/audit/proofs/inclusion",
                       params={"leaf_index": 2, "tree_size": 11}).json()
    assert (proof["leaf_index"], proof["entry_seq"]) == (2, 3)
    entry = db_session.get(audit_service.AuditEntry, 3)
    leaf = leaf_hash(audit_service.leaf_bytes(entry))
    assert verify_inclusion(leaf, 2, 11, [bytes.fromhex(h) for h in proof["inclusion_path"]],
                            signed.root_hash)

    consistency = client.get("/api/v1/audit/proofs/consistency",
                             params={"first": 5, "second": 11}).json()
    assert verify_consistency(5, 11, [bytes.fromhex(h) for h in consistency["consistency_path"]],
                              bytes.fromhex(first.root_hash), bytes.fromhex(second.root_hash))


def test_proof_for_an_entry_outside_the_tree_is_a_problem_document(
    client: TestClient[Litestar], db_session: Session, clock: FrozenClock
) -> None:
    _append(db_session, clock, 2)
    response = client.get("/api/v1/audit/proofs/inclusion",
                          params={"leaf_index": 4, "tree_size": 2})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    beyond = client.get("/api/v1/audit/proofs/inclusion",
                        params={"leaf_index": 0, "tree_size": 3})
    assert beyond.status_code == 404
    assert "reached" in beyond.json()["detail"]


def test_concurrent_group_commits_form_one_chain(
    db_session: Session, runtime: Runtime
) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for i in range(25):
            seq = runtime.audit_appender.append(_event(offset + i))
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=worker, args=(n * 100,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seqs) == list(range(1, 201))
    _sign(db_session, runtime)
    report = verify_database(db_session, verifier_key=_key(runtime))
    assert report.ok, report.problems
    assert report.entries == 200


def test_verify_names_a_modified_entry(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 8)
    _sign(db_session, runtime)
    _tamper(db_session, "UPDATE audit_entry SET subject = 'someone-else' WHERE seq = 5")
    report = verify_database(db_session, verifier_key=_key(runtime))
    assert report.first_broken_seq == 5
    assert any("entry 5 was modified" in p for p in report.problems)


def test_verify_catches_a_rewrite_with_recomputed_hashes(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 8)
    _sign(db_session, runtime)
    rows = list(audit_service.iter_entries(db_session))
    forged = rows[3]
    forged.outcome = "deny"
    db_session.expunge_all()
    prev = rows[2].entry_hash
    for entry in rows[3:]:
        entry.prev_hash = prev
        entry.entry_hash = audit_service.chain_hash(prev, entry)
        entry.leaf_hash = leaf_hash(audit_service.leaf_bytes(entry)).hex()
        prev = entry.entry_hash
        _tamper(db_session, f"UPDATE audit_entry SET outcome='{entry.outcome}', "
                f"prev_hash='{entry.prev_hash}', entry_hash='{entry.entry_hash}', "
                f"leaf_hash='{entry.leaf_hash}' WHERE seq={entry.seq}")
    _tamper(db_session, f"UPDATE audit_head SET head_hash='{prev}' WHERE id=1")
    report = verify_database(db_session, verifier_key=_key(runtime))
    assert not report.ok
    assert any("do not hash to the signed root" in p for p in report.problems)


def test_verify_detects_reordered_and_inserted_entries(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 6)
    _tamper(db_session, "UPDATE audit_entry SET seq = seq + 100 WHERE seq IN (2, 3)")
    _tamper(db_session, "UPDATE audit_entry SET seq = 3 WHERE seq = 102")
    _tamper(db_session, "UPDATE audit_entry SET seq = 2 WHERE seq = 103")
    report = verify_database(db_session, verifier_key=_key(runtime))
    assert report.first_broken_seq == 2


def test_held_checkpoint_reveals_a_rollback(
    db_session: Session, runtime: Runtime, clock: FrozenClock
) -> None:
    _append(db_session, clock, 10)
    held = _sign(db_session, runtime)
    name, public_key = parse_verifier_key(_key(runtime))
    held_checkpoint = verify_checkpoint(held.note, public_key, name)
    _tamper(db_session, "DELETE FROM audit_entry WHERE seq > 6")
    _tamper(db_session, "DELETE FROM audit_checkpoint")
    _tamper(db_session, "UPDATE audit_head SET size = 6, head_hash = "
            "(SELECT entry_hash FROM audit_entry WHERE seq = 6) WHERE id = 1")
    report = verify_database(db_session, verifier_key=_key(runtime), held=held_checkpoint)
    assert any(p.startswith("rollback") for p in report.problems)


def test_export_file_verifies_and_a_changed_byte_does_not(
    db_session: Session, runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    _append(db_session, clock, 12)
    _sign(db_session, runtime)
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_jsonl(db_session, handle, verifier_key=_key(runtime), size=12)
    key, heads, entries = read_export(path)
    assert verify(entries, heads, verifier_key=key).ok

    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4].replace('"newsletter"', '"newsletteR"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    key, heads, entries = read_export(path)
    report = verify(entries, heads, verifier_key=key)
    assert report.first_broken_seq == 4


def test_export_with_two_heads_for_one_size_is_a_fork(
    db_session: Session, runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    _append(db_session, clock, 4)
    _sign(db_session, runtime)
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_jsonl(db_session, handle, verifier_key=_key(runtime), size=4)
    key, heads, entries = read_export(path)
    other = transparency.Checkpoint(heads[0].note.splitlines()[0], 4, b"\x01" * 32)
    from cmr_vault.audit.checkpoint import sign_checkpoint

    forged = sign_checkpoint(other, transparency.signing_key(runtime.keyring.signing_key),
                             heads[0].note.splitlines()[0]).to_text()
    heads.append(type(heads[0])(4, (b"\x01" * 32).hex(), forged))
    report = verify(entries, heads, verifier_key=key)
    assert any(p.startswith("fork") for p in report.problems)


def test_every_audit_api_answer_has_a_typed_schema(client: TestClient[Litestar]) -> None:
    document = client.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    audit_paths = [p for p in document["paths"] if p.startswith("/api/v1/audit/")]
    assert len(audit_paths) == 5
    for path in audit_paths:
        answer = document["paths"][path]["get"]["responses"]["200"]["content"]
        reference = answer["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert schemas[reference]["properties"], path
    assert "leaf_index" in schemas["InclusionProof"]["required"]
def test_an_export_spelling_an_entrys_instant_another_way_still_verifies(
    db_session: Session, runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    _append(db_session, clock, 3)
    _sign(db_session, runtime)
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_jsonl(db_session, handle, verifier_key=_key(runtime), size=3)
    lines = path.read_text(encoding="utf-8").splitlines()
    second = json.loads(lines[2])
    moment = second["recorded_at"]
    second["recorded_at"] = moment.replace("T", " ").replace("Z", "+00:00")
    lines[2] = json.dumps(second)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    key, heads, entries = read_export(path)
    assert verify(entries, heads, verifier_key=key).ok

    later = datetime.fromisoformat(moment) + timedelta(microseconds=1)
    second["recorded_at"] = later.isoformat()
    lines[2] = json.dumps(second)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    key, heads, entries = read_export(path)
    assert verify(entries, heads, verifier_key=key).first_broken_seq == 2
