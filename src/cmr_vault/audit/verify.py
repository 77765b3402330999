"""`audit verify`: recompute every hash, the Merkle tree and every signature.

Works the same on the live database and on an export file. It names the first entry whose
content, position or link is wrong (modified, reordered, deleted or inserted entries), checks
each signed checkpoint's signature and root against the recomputed tree (an attacker who
rewrote the hashes too is caught here), and, given a checkpoint the auditor held from before,
detects a log that was truncated or rolled back, or that forked (another head signed for a size).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session, col, select

from cmr_vault.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_verifier_key,
    verify_checkpoint,
)
from cmr_vault.audit.merkle import MerkleTree, leaf_hash
from cmr_vault.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from cmr_vault.audit.service import (
    GENESIS_HASH,
    LoggedEntry,
    canonical_json,
    iter_entry_rows,
    leaf_bytes,
)

EXPORT_FORMAT = "cmr-vault/audit-export/v1"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint as stored or exported: size, root and the signed note."""

    size: int
    root_hash: str
    note: str


@dataclass
class VerifyReport:
    """What verification found. `ok` only when nothing at all is wrong."""

    entries: int = 0
    checkpoints: int = 0
    first_broken_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every entry, link, root and signature checks out."""
        return not self.problems


def _check_entries(
    entries: Iterable[LoggedEntry], report: VerifyReport, tree: MerkleTree,
    progress: Progress | None,
) -> str:
    prev = GENESIS_HASH
    for position, entry in enumerate(entries, start=1):
        data = leaf_bytes(entry)
        problem = None
        if entry.seq != position:
            problem = f"entry {position} is missing or out of order (found seq {entry.seq})"
        elif entry.prev_hash != prev:
            problem = f"entry {entry.seq} does not link to the entry before it"
        elif hashlib.sha256(bytes.fromhex(prev) + data).hexdigest() != entry.entry_hash:
            problem = f"entry {entry.seq} was modified: its content does not match its hash"
        if problem and report.first_broken_seq is None:
            report.first_broken_seq = position
            report.problems.append(problem)
        tree.append(leaf_hash(data))
        prev = entry.entry_hash
        report.entries = position
        if progress and position % 10_000 == 0:
            progress(position)
    if progress:
        progress(report.entries)
    return prev


def _check_heads(
    heads: list[SignedHead], tree: MerkleTree, public_key: Ed25519PublicKey, key_name: str,
    report: VerifyReport,
) -> None:
    by_size: dict[int, str] = {}
    for head in heads:
        if by_size.get(head.size, head.root_hash) != head.root_hash:
            report.problems.append(f"fork: two different heads were signed for size {head.size}")
        by_size[head.size] = head.root_hash
        try:
            signed = verify_checkpoint(head.note, public_key, key_name)
        except CheckpointError as exc:
            report.problems.append(f"checkpoint {head.size}: bad signature ({exc})")
            continue
        report.checkpoints += 1
        if signed.size != head.size or signed.root_hash.hex() != head.root_hash:
            report.problems.append(f"checkpoint {head.size}: stored fields differ from the note")
        elif head.size > len(tree):
            report.problems.append(
                f"checkpoint {head.size} covers more entries than the log holds ({len(tree)}): "
                "entries were removed"
            )
        elif tree.root(head.size) != signed.root_hash:
            report.problems.append(
                f"checkpoint {head.size}: the entries up to it do not hash to the signed root "
                "(entries were rewritten with recomputed hashes)"
            )


def check_held_checkpoint(held: Checkpoint, tree: MerkleTree, report: VerifyReport) -> None:
    """Compare with a checkpoint the auditor kept from an earlier visit."""
    if held.size > len(tree):
        report.problems.append(
            f"rollback: you hold a signed head for {held.size} entries but the log now has "
            f"{len(tree)}: it was truncated or restored from an older backup"
        )
    elif tree.root(held.size) != held.root_hash:
        report.problems.append(
            f"fork: the log's first {held.size} entries differ from the head you hold"
        )


def verify(
    entries: Iterable[LoggedEntry], heads: list[SignedHead], *, verifier_key: str,
    held: Checkpoint | None = None, head_size: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify a log given its entries in order, its signed heads, and the verifier key."""
    key_name, public_key = parse_verifier_key(verifier_key)
    report = VerifyReport()
    tree = MerkleTree()
    _check_entries(entries, report, tree, progress)
    if head_size is not None and head_size != report.entries:
        report.problems.append(
            f"the head says {head_size} entries but {report.entries} were found: "
            "entries were removed or added"
        )
    _check_heads(heads, tree, public_key, key_name, report)
    if held is not None:
        check_held_checkpoint(held, tree, report)
    return report


def verify_database(
    session: Session, *, verifier_key: str, held: Checkpoint | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify the live log."""
    head = session.get(AuditHead, 1)
    heads = [
        SignedHead(c.size, c.root_hash, c.note)
        for c in session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.size))).all()
    ]
    return verify(iter_entry_rows(session), heads, verifier_key=verifier_key, held=held,
                  head_size=head.size if head else 0, progress=progress)


def entry_from_export(record: dict[str, object]) -> AuditEntry:
    """Rebuild an entry from one exported JSON line."""
    return AuditEntry.model_validate({**record, "details": canonical_json(record["details"])})


def read_export(path: Path) -> tuple[str, list[SignedHead], Iterator[AuditEntry]]:
    """(verifier key, signed heads, entries) from a JSONL export file."""
    with path.open(encoding="utf-8") as handle:
        header = json.loads(handle.readline() or "{}")
        if header.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{path}:1: not a {EXPORT_FORMAT} file")
        heads = [SignedHead(**h) for h in header.get("checkpoints", [])]

    def entries() -> Iterator[AuditEntry]:
        with path.open(encoding="utf-8") as handle:
            handle.readline()
            for number, line in enumerate(handle, start=2):
                try:
                    yield entry_from_export(json.loads(line))
                except (ValueError, KeyError) as exc:
                    raise ValueError(f"{path}:{number}: not an audit entry ({exc})") from exc

    return str(header.get("verifier_key", "")), heads, entries()
