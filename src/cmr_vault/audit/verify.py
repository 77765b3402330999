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
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session, col, select

from cmr_vault.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_verifier_key,
    verify_checkpoint,
)
from cmr_vault.audit.merkle import MerkleTree, leaf_hash
from cmr_vault.audit.models import AuditCheckpoint, AuditHead
from cmr_vault.audit.service import (
    GENESIS_HASH,
    CanonicalRow,
    LoggedEntry,
    canonical_json,
    canonical_row,
    iter_canonical_rows,
    stored_moment,
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
    entries: Iterable[LoggedEntry] | Rows, report: VerifyReport, tree: MerkleTree,
    progress: Progress | None,
) -> str:
    """Check every entry's position, link and hash, and add its leaf to the tree.

    The hot loop of `audit verify`: each entry's canonical bytes are built once (the layout of
    `audit.service._canonical`, kept in step by the tests) and hashed twice, for the chain and
    for the leaf. The previous digest is carried as bytes, so no hex is parsed while the chain
    holds.
    """
    rows = entries.rows if isinstance(entries, Rows) else map(canonical_row, entries)
    dumps, sha256, append = encode_basestring, hashlib.sha256, tree.append
    prev_hex, prev = GENESIS_HASH, bytes.fromhex(GENESIS_HASH)
    position = 0
    for position, (seq, at, actor, action, subject, resource, purpose, outcome, details,
                   prev_hash, entry_hash) in enumerate(rows, start=1):
        data = (
            f'{{"action":{dumps(action)},"actor":{dumps(actor)},"details":{details},'
            f'"outcome":{dumps(outcome)},"purpose":{dumps(purpose)},'
            f'"recorded_at":{dumps(at)},"resource":{dumps(resource)},"seq":{int(seq)},'
            f'"subject":{dumps(subject)}}}'
        ).encode()
        digest = sha256(prev + data).digest()
        if seq != position or prev_hash != prev_hex or digest.hex() != entry_hash:
            _broken(report, position, seq, prev_hash != prev_hex)
            # The next link is checked against the stored hash, as a chain reader follows it.
            digest = bytes.fromhex(entry_hash)
        prev, prev_hex = digest, entry_hash
        append(leaf_hash(data))
        if progress and position % 10_000 == 0:
            progress(position)
    report.entries = position
    if progress:
        progress(report.entries)
    return prev_hex


def _broken(report: VerifyReport, position: int, seq: int, unlinked: bool) -> None:
    """Name the first entry that is out of place, unlinked or modified."""
    if report.first_broken_seq is not None:
        return
    report.first_broken_seq = position
    if seq != position:
        report.problems.append(f"entry {position} is missing or out of order (found seq {seq})")
    elif unlinked:
        report.problems.append(f"entry {seq} does not link to the entry before it")
    else:
        report.problems.append(f"entry {seq} was modified: its content does not match its hash")


@dataclass(frozen=True)
class Rows:
    """Entries already in the tuple form verification hashes (`iter_canonical_rows`)."""

    rows: Iterable[CanonicalRow]


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
    entries: Iterable[LoggedEntry] | Rows, heads: list[SignedHead], *, verifier_key: str,
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
    return verify(Rows(iter_canonical_rows(session)), heads, verifier_key=verifier_key, held=held,
                  head_size=head.size if head else 0, progress=progress)


def entry_from_export(record: dict[str, Any]) -> CanonicalRow:
    """One exported JSON line as the tuple verification hashes."""
    texts = [record[name] for name in _TEXT_FIELDS]
    if not isinstance(record["seq"], int) or not all(isinstance(t, str) for t in texts):
        raise ValueError("seq is a number and the other fields are strings")
    actor, action, subject, resource, purpose, outcome, prev_hash, entry_hash = texts
    return (record["seq"], stored_moment(record["recorded_at"]), actor, action, subject,
            resource, purpose, outcome, canonical_json(record["details"]), prev_hash,
            entry_hash)


_TEXT_FIELDS = ("actor", "action", "subject", "resource", "purpose", "outcome", "prev_hash",
                "entry_hash")


def read_export(path: Path) -> tuple[str, list[SignedHead], Rows]:
    """(verifier key, signed heads, entries) from a JSONL export file.

    Entries are read lazily, straight into the tuples verification hashes (no model per line).
    """
    with path.open(encoding="utf-8") as handle:
        header = json.loads(handle.readline() or "{}")
        if header.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{path}:1: not a {EXPORT_FORMAT} file")
        heads = [SignedHead(**h) for h in header.get("checkpoints", [])]

    def entries() -> Iterator[CanonicalRow]:
        with path.open(encoding="utf-8") as handle:
            handle.readline()
            for number, line in enumerate(handle, start=2):
                try:
                    yield entry_from_export(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: not an audit entry ({exc})") from exc

    return str(header.get("verifier_key", "")), heads, Rows(entries())
