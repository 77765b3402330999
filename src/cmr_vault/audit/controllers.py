"""The public transparency API: verifier key, signed heads, proofs, and the log as tiles.

Heads, proofs and hash tiles hold hashes and signatures only, never entries, so anyone may
fetch them: a customer's browser, an auditor's script, a watchdog that keeps old heads to
detect a rollback, any C2SP tlog-tiles client. Entry bundles hold the entries themselves, so
only a signed-in auditor gets them. Leaf indexes are RFC 9162's: zero-based, so entry `seq`
is leaf `seq - 1`. The format is written down in docs/audit-log-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeAlias

from litestar import Controller, Response, get
from litestar.di import Provide
from litestar.params import FromPath, Parameter, QueryParameter

from cmr_vault.accounts.deps import Auditor, provide_auditor
from cmr_vault.audit import cosigning, transparency
from cmr_vault.audit.models import AuditCheckpoint
from cmr_vault.audit.tiles import ENTRIES, TileNotFound, entry_bundle, parse_tile_path, tile_bytes
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import NotFound
from cmr_vault.web.openapi import AUDITOR_SESSION

MAX_SEQ = 2**53  # exact in every JSON parser
LogPosition: TypeAlias = Annotated[int, Parameter(ge=1, le=MAX_SEQ)]
LogQuery: TypeAlias = Annotated[int, Parameter(ge=1, le=MAX_SEQ)]
LeafIndex: TypeAlias = Annotated[int, QueryParameter(
    ge=0, le=MAX_SEQ, description="RFC 9162 leaf index: zero-based, entry seq - 1.")]
TreeSize: TypeAlias = Annotated[int, QueryParameter(ge=1, le=MAX_SEQ)]

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=5"


@dataclass(frozen=True)
class VerifierKeys:
    """The keys that check this log: the vault's, and each configured witness's."""

    verifier_key: str
    """The log's Ed25519 verifier key (C2SP signed-note): `<origin>+<key id>+<key>`."""
    origin: str
    """The checkpoint origin line; also the URL prefix of the tiles, without a scheme."""
    witness_keys: list[str]
    """Witness cosigning keys (C2SP tlog-cosignature, type 0x04) the vault submits to."""


@dataclass(frozen=True)
class SignedTreeHead:
    """One signed checkpoint (C2SP tlog-checkpoint)."""

    tree_size: int
    root_hash: str
    """Hex SHA-256 Merkle tree hash (RFC 9162 §2.1.1) of the first `tree_size` leaves."""
    note: str
    """The checkpoint signed by the log alone."""
    cosigned_note: str
    """The same checkpoint with every witness cosignature the vault holds appended."""
    cosigned_by: list[str]
    """The witnesses (key names) whose cosignature `cosigned_note` carries."""
    signed_at: datetime


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 9162 inclusion proof (§2.1.3) of one leaf in one tree size."""

    leaf_index: int
    """Zero-based (RFC 9162); the entry's `seq` is `leaf_index + 1`."""
    entry_seq: int
    tree_size: int
    leaf_hash: str
    inclusion_path: list[str]
    """Hex hashes, from the leaf's sibling up to the root's child."""


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof (§2.1.4) between two tree sizes."""

    first: int
    second: int
    consistency_path: list[str]


def _head(db_session: DbSession, checkpoint: AuditCheckpoint,
          witnesses: list[cosigning.WitnessEndpoint]) -> SignedTreeHead:
    cosigned = cosigning.cosigned_note(db_session, checkpoint)
    names = sorted(cosigning.cosigners(cosigned, witnesses))
    return SignedTreeHead(checkpoint.size, checkpoint.root_hash, checkpoint.note, cosigned,
                          names, checkpoint.signed_at)


class TransparencyApi(Controller):
    """Signed tree heads and Merkle proofs over the audit log (RFC 9162)."""

    path = "/api/v1/audit"
    tags = ["audit"]

    @get("/verifier-key", sync_to_thread=True)
    def verifier_key(self, runtime: RuntimeDep) -> VerifierKeys:
        """The Ed25519 verifier key (C2SP signed-note format) that checks every signed head,
        and the keys of the witnesses that cosign them."""
        return VerifierKeys(
            transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin),
            runtime.log_origin, [w.verifier_key for w in runtime.witnesses])

    @get("/checkpoints/latest", sync_to_thread=True)
    def latest(self, db_session: DbSession, runtime: RuntimeDep) -> SignedTreeHead:
        """The newest signed tree head."""
        checkpoint = transparency.latest_checkpoint(db_session)
        if checkpoint is None:
            raise NotFound("No tree head has been signed yet.")
        return _head(db_session, checkpoint, runtime.witnesses)

    @get("/checkpoints/{size:int}", sync_to_thread=True)
    def at_size(self, db_session: DbSession, runtime: RuntimeDep,
                size: LogPosition) -> SignedTreeHead:
        """The signed tree head for exactly `size` entries."""
        return _head(db_session, transparency.checkpoint_at(db_session, size),
                     runtime.witnesses)

    @get("/proofs/inclusion", sync_to_thread=True)
    def inclusion(self, db_session: DbSession, runtime: RuntimeDep, leaf_index: LeafIndex,
                  tree_size: TreeSize) -> InclusionProof:
        """The audit path proving leaf `leaf_index` (entry `leaf_index + 1`) is in the tree of
        `tree_size` leaves."""
        proof = transparency.inclusion_proof(db_session, tree=runtime.audit_tree,
                                             seq=leaf_index + 1, size=tree_size)
        tree = runtime.audit_tree.synced(db_session, tree_size)
        return InclusionProof(leaf_index, leaf_index + 1, tree_size,
                              tree.leaf(leaf_index).hex(), [h.hex() for h in proof])

    @get("/proofs/consistency", sync_to_thread=True)
    def consistency(self, db_session: DbSession, runtime: RuntimeDep, first: LogQuery,
                    second: LogQuery) -> ConsistencyProof:
        """The proof that the tree of `first` entries is a prefix of the tree of `second`."""
        proof = transparency.consistency_proof(db_session, tree=runtime.audit_tree, first=first,
                                               second=second)
        return ConsistencyProof(first, second, [h.hex() for h in proof])


def _tile_response(data: bytes, *, full: bool) -> Response[bytes]:
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": IMMUTABLE if full else SHORT_LIVED})


class TiledLog(Controller):
    """The log as C2SP tlog-tiles under its origin's prefix (`<vault>/audit`)."""

    path = "/audit"
    tags = ["audit"]

    @get("/checkpoint", sync_to_thread=True, media_type="text/plain; charset=utf-8")
    def checkpoint(self, db_session: DbSession, runtime: RuntimeDep) -> Response[str]:
        """The published checkpoint: the newest every configured witness cosigned (the newest
        signed one without witnesses), with its cosignatures."""
        checkpoint = cosigning.published_checkpoint(
            db_session, [w.name for w in runtime.witnesses])
        if checkpoint is None:
            raise NotFound("No tree head has been signed yet.")
        return Response(cosigning.cosigned_note(db_session, checkpoint),
                        media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": SHORT_LIVED})

    @get("/tile/{tile_path:path}", sync_to_thread=True, media_type="application/octet-stream")
    def tile(self, db_session: DbSession, runtime: RuntimeDep,
             tile_path: FromPath[str]
             ) -> Response[bytes]:
        """A hash tile `<L>/<N>[.p/<W>]`: 256 (or W) consecutive hashes of one level."""
        try:
            tile = parse_tile_path(tile_path.lstrip("/"))
            if tile.level == ENTRIES:
                raise TileNotFound("entry bundles are for auditors: /audit/entries/…")
            size = transparency.log_size(db_session)
            data = tile_bytes(runtime.audit_tree.synced(db_session, size), tile)
        except TileNotFound as exc:
            raise NotFound(f"No such tile: {exc}") from exc
        return _tile_response(data, full=tile.full)

    @get("/tile/entries/{tile_path:path}", sync_to_thread=True,
         media_type="application/octet-stream", security=AUDITOR_SESSION,
         dependencies={"auditor": Provide(provide_auditor, sync_to_thread=True)})
    def entries(self, auditor: Auditor,  # noqa: ARG002 (the dependency is the access check)
                db_session: DbSession, tile_path: FromPath[str]) -> Response[bytes]:
        """An entry bundle `<N>[.p/<W>]`: each entry's canonical bytes behind a uint16 length.
        Entries name pseudonyms and companies, so only a signed-in auditor gets them."""
        try:
            tile = parse_tile_path(f"{ENTRIES}/{tile_path.lstrip('/')}")
            data = entry_bundle(db_session, transparency.log_size(db_session), tile)
        except TileNotFound as exc:
            raise NotFound(f"No such entry bundle: {exc}") from exc
        return _tile_response(data, full=tile.full)
