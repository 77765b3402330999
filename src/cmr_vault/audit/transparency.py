"""The log as a transparency log: Merkle tree, signed checkpoints, inclusion and consistency proofs.

Leaf i of the tree (RFC 9162 §2.1) is entry seq i+1; its leaf hash is stored with the entry, so
proofs need no re-serialisation. The tree lives in the database as C2SP tiles (`audit.tiles`):
a process keeps only a bounded cache of full tiles, so its memory does not grow with the log.
Checkpoints are signed with the Ed25519 key from the keyring in the C2SP tlog-checkpoint format,
so an auditor needs nothing but the verifier key to check them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, col, select

from cmr_vault.audit.checkpoint import (
    Checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    verifier_key_for,
    verify_checkpoint,
)
from cmr_vault.audit.merkle import leaf_hash, verify_inclusion
from cmr_vault.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from cmr_vault.audit.service import entries_about, leaf_bytes
from cmr_vault.audit.tiles import TileCache, TiledTree, build_tiles
from cmr_vault.clock import Clock
from cmr_vault.errors import NotFound


def log_origin(issuer: str) -> str:
    """The origin a new log takes: the vault's host and path, no scheme (C2SP convention)."""
    return issuer.split("://", 1)[-1].rstrip("/") + "/audit"


def pinned_origin(session: Session) -> str | None:
    """The origin the log's first checkpoint was signed under, if one was signed.

    A log keeps that name for life, so a vault later served on another port or URL, or a
    command run without the server's public URL, still signs and verifies under the name its
    checkpoints carry.
    """
    note = session.exec(
        select(AuditCheckpoint.note).order_by(col(AuditCheckpoint.size)).limit(1)
    ).first()
    return note.split("\n", 1)[0] if note else None


def signing_key(seed: bytes) -> Ed25519PrivateKey:
    """The log's Ed25519 key, derived from the keyring's 32-byte seed."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def verifier_key(seed: bytes, origin: str) -> str:
    """The public verifier key string an auditor needs (C2SP signed-note format)."""
    return verifier_key_for(signing_key(seed), origin)


class TreeCache:
    """This process's view of the tree: no leaves, only a bounded cache of full tiles."""

    def __init__(self, max_tiles: int = 512) -> None:
        self.tiles = TileCache(max_tiles)

    def synced(self, session: Session, size: int) -> TiledTree:
        """The first `size` leaves as a tree, their full tiles stored first if they were not."""
        if size > log_size(session):
            raise NotFound(f"the log has fewer than {size} entries")
        try:
            build_tiles(session, size, self.tiles)
        except LookupError as exc:
            raise NotFound(str(exc)) from exc
        return TiledTree(session, size, self.tiles)


def log_size(session: Session) -> int:
    """How many entries the log holds (the head's size)."""
    head = session.get(AuditHead, 1)
    return head.size if head else 0


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The newest signed tree head."""
    return session.exec(
        select(AuditCheckpoint).order_by(col(AuditCheckpoint.size).desc()).limit(1)
    ).first()


def checkpoint_at(session: Session, size: int) -> AuditCheckpoint:
    """The signed tree head for exactly `size` entries."""
    checkpoint = session.get(AuditCheckpoint, size)
    if checkpoint is None:
        raise NotFound(f"no checkpoint for size {size}")
    return checkpoint


def sign_head(
    session: Session, *, tree: TreeCache, seed: bytes, origin: str, clock: Clock
) -> AuditCheckpoint:
    """Sign the tree head at the log's current size (or return the one already signed)."""
    size = log_size(session)
    existing = session.get(AuditCheckpoint, size)
    if existing is not None:
        return existing
    root = tree.synced(session, size).root(size)
    note = sign_checkpoint(Checkpoint(origin, size, root), signing_key(seed), origin).to_text()
    checkpoint = AuditCheckpoint(size=size, root_hash=root.hex(), note=note,
                                 signed_at=clock.now())
    session.add(checkpoint)
    session.flush()
    return checkpoint


def fresh_checkpoint(
    session: Session, *, tree: TreeCache, seed: bytes, origin: str, clock: Clock,
    covering: int,
) -> AuditCheckpoint:
    """A checkpoint that covers entry `covering`, signing a new one only when needed."""
    latest = latest_checkpoint(session)
    if latest is not None and latest.size >= covering:
        return latest
    return sign_head(session, tree=tree, seed=seed, origin=origin, clock=clock)


def inclusion_proof(session: Session, *, tree: TreeCache, seq: int, size: int) -> list[bytes]:
    """The audit path proving entry `seq` is in the tree of `size` entries."""
    if not 1 <= seq <= size or size > log_size(session):
        raise NotFound(f"No inclusion proof: entry {seq} is not within a tree of size {size} "
                       "that this log has reached.")
    return tree.synced(session, size).inclusion_proof(seq - 1, size)


def consistency_proof(session: Session, *, tree: TreeCache, first: int, second: int) -> list[bytes]:
    """The proof that the tree of `first` entries is a prefix of the tree of `second`."""
    if not 0 < first <= second or second > log_size(session):
        raise NotFound(f"No consistency proof from a tree of {first} entries to one of {second} "
                       "(the first must be positive, not above the second, and reached).")
    return tree.synced(session, second).consistency_proof(first, second)


def sign_if_grown(session: Session, *, tree: TreeCache, seed: bytes, origin: str,
                  clock: Clock) -> AuditCheckpoint | None:
    """Sign a new head when the log grew since the last one (the periodic signer's step)."""
    latest = latest_checkpoint(session)
    if log_size(session) == (latest.size if latest else 0):
        return None
    return sign_head(session, tree=tree, seed=seed, origin=origin, clock=clock)


@dataclass(frozen=True)
class InclusionCheck:
    """Whether one entry is provably in a signed tree head."""

    seq: int
    included: bool
    size: int


def check_entries_included(
    session: Session, *, tree: TreeCache, entries: list[AuditEntry], checkpoint: AuditCheckpoint,
    verifier: str,
) -> dict[int, InclusionCheck]:
    """Check each entry against a signed head as an outsider would.

    The head's signature is checked with the verifier key, each leaf hash is recomputed from
    the entry's content (not read from the stored column), and each audit path is verified
    against the signed root. Entries newer than the head are reported as not yet included.
    """
    name, public_key = parse_verifier_key(verifier)
    signed = verify_checkpoint(checkpoint.note, public_key, name)
    results = {}
    for entry in entries:
        if entry.seq > signed.size:
            results[entry.seq] = InclusionCheck(entry.seq, False, signed.size)
            continue
        proof = inclusion_proof(session, tree=tree, seq=entry.seq, size=signed.size)
        ok = verify_inclusion(leaf_hash(leaf_bytes(entry)), entry.seq - 1, signed.size, proof,
                              signed.root_hash)
        results[entry.seq] = InclusionCheck(entry.seq, ok, signed.size)
    return results


@dataclass(frozen=True)
class ProvenHistory:
    """One subject's entries, each checked for inclusion in a signed head."""

    entries: list[AuditEntry]
    checkpoint: AuditCheckpoint | None
    checks: dict[int, InclusionCheck]

    @property
    def all_included(self) -> bool:
        """True when every entry shown is proven to be in the signed log."""
        return all(self.checks.get(e.seq, InclusionCheck(e.seq, False, 0)).included
                   for e in self.entries)


def proven_history(
    session: Session, *, tree: TreeCache, seed: bytes, origin: str, clock: Clock, subject: str,
    limit: int = 500,
) -> ProvenHistory:
    """The newest entries about `subject`, each proven against a head that covers them all.

    A head is signed on the spot when the latest one is older than the newest entry, so the
    customer never sees an entry marked unproven merely because the signer has not run yet.
    """
    entries = entries_about(session, subject, limit=limit)
    if not entries:
        return ProvenHistory(entries, latest_checkpoint(session), {})
    checkpoint = fresh_checkpoint(session, tree=tree, seed=seed, origin=origin, clock=clock,
                                  covering=entries[0].seq)
    checks = check_entries_included(session, tree=tree, entries=entries, checkpoint=checkpoint,
                                    verifier=verifier_key(seed, origin))
    return ProvenHistory(entries, checkpoint, checks)
