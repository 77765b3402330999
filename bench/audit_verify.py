"""Audit verification speed and Merkle proof times.

    python bench/audit_verify.py [--entries 200000] [--proof-sizes 1000000,10000000]

1. Verification: `audit.verify.verify` over N in-memory entries (canonical bytes, chain hash,
   leaf hash, tree), and `verify_database` over the same entries in a SQLite file (what
   `cmr-vault audit verify` runs), against the baseline of raw SHA-256 over the same bytes
   (in memory: best of three alternating rounds of each).
2. Inclusion proofs: time to build a tree of 1 M and 10 M leaves, then the mean time of one
   inclusion proof and one consistency proof, and of verifying them.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, update
from sqlmodel import Session

from cmr_vault.audit.checkpoint import verifier_key_for
from cmr_vault.audit.merkle import MerkleTree, verify_consistency, verify_inclusion
from cmr_vault.audit.models import AuditEntry, AuditHead
from cmr_vault.audit.service import GENESIS_HASH, AppendedEntry, AuditEvent, _entry, leaf_bytes
from cmr_vault.audit.transparency import signing_key
from cmr_vault.audit.verify import verify, verify_database
from cmr_vault.clock import utc_iso
from cmr_vault.db.engine import make_engine
from cmr_vault.db.migrate import upgrade


def _entries(count: int) -> list[AppendedEntry]:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    entries, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        event = AuditEvent(actor="company:c_bench", action="profile.read",
                           subject=f"{seq % 997:032x}", resource="profile", purpose="receipts",
                           outcome="allow",
                           details={"fields": ["email"], "rule_ids": ["read.allow"]})
        entry = _entry(seq, prev, at, utc_iso(at), event)
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def bench_verify(count: int) -> None:
    entries = _entries(count)
    data = [leaf_bytes(e) for e in entries]
    key = verifier_key_for(signing_key(b"\x01" * 32), "bench/audit")
    raw = full = float("inf")
    for _ in range(3):  # alternating rounds, best of each: the machine is shared
        start = time.perf_counter()
        for item in data:
            hashlib.sha256(item).digest()
        raw = min(raw, time.perf_counter() - start)
        start = time.perf_counter()
        report = verify(iter(entries), [], verifier_key=key)
        full = min(full, time.perf_counter() - start)
        assert report.ok, report.problems
    print(f"verify {count:,} entries: {count / full:,.0f} entries/s "
          f"({full / count * 1e6:.2f} µs/entry)")
    print(f"raw SHA-256 over the same bytes: {count / raw:,.0f} entries/s "
          f"({raw / count * 1e6:.2f} µs/entry); verify costs {full / raw:.1f}× raw hashing")
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'log.db'}", immediate=False)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(AuditEntry.__table__), [e.row() for e in entries])  # type: ignore[attr-defined]
            conn.execute(update(AuditHead.__table__).values(  # type: ignore[attr-defined]
                size=count, head_hash=entries[-1].entry_hash))
        with Session(engine) as session:
            start = time.perf_counter()
            report = verify_database(session, verifier_key=key)
            stored = time.perf_counter() - start
        engine.dispose()
    assert report.ok, report.problems
    print(f"verify the same log from a SQLite file (`audit verify`): {count / stored:,.0f} "
          f"entries/s; {stored / raw:.1f}× raw hashing")


def bench_proofs(size: int, samples: int = 2000) -> None:
    start = time.perf_counter()
    tree = MerkleTree()
    for i in range(size):
        tree.append(hashlib.sha256(i.to_bytes(8, "big")).digest())
    built = time.perf_counter() - start
    rng = random.Random(7)
    indexes = [rng.randrange(size) for _ in range(samples)]
    root = tree.root()
    start = time.perf_counter()
    proofs = [tree.inclusion_proof(i, size) for i in indexes]
    inclusion = (time.perf_counter() - start) / samples
    start = time.perf_counter()
    for i, proof in zip(indexes, proofs, strict=True):
        assert verify_inclusion(tree.leaf(i), i, size, proof, root)
    checking = (time.perf_counter() - start) / samples
    firsts = [rng.randrange(1, size) for _ in range(samples // 10)]
    start = time.perf_counter()
    consistency = [tree.consistency_proof(m, size) for m in firsts]
    consistent = (time.perf_counter() - start) / len(firsts)
    for m, proof in zip(firsts[:20], consistency[:20], strict=True):
        assert verify_consistency(m, size, proof, tree.root(m), root)
    print(json.dumps({
        "tree_size": size, "build_seconds": round(built, 1),
        "inclusion_proof_us": round(inclusion * 1e6, 1),
        "verify_inclusion_us": round(checking * 1e6, 1),
        "consistency_proof_us": round(consistent * 1e6, 1),
        "proof_hashes": len(proofs[0]),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--proof-sizes", default="1000000,10000000")
    args = parser.parse_args()
    bench_verify(args.entries)
    for size in (int(s) for s in args.proof_sizes.split(",") if s):
        bench_proofs(size)


if __name__ == "__main__":
    main()
