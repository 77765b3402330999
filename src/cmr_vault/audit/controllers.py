"""The public transparency API: verifier key, signed heads and proofs.

These answers hold hashes and signatures only, never entries, so anyone may fetch them: a
customer's browser, an auditor's script, a watchdog that keeps old heads to detect a rollback.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from litestar import Controller, get
from litestar.params import Parameter

from cmr_vault.audit import transparency
from cmr_vault.audit.models import AuditCheckpoint
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import NotFound

MAX_SEQ = 2**53  # exact in every JSON parser
LogPosition: TypeAlias = Annotated[int, Parameter(ge=1, le=MAX_SEQ)]
LogQuery: TypeAlias = Annotated[int, Parameter(ge=1, le=MAX_SEQ)]


def _head(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {"size": checkpoint.size, "root_hash": checkpoint.root_hash, "note": checkpoint.note}


class TransparencyApi(Controller):
    """Signed tree heads and Merkle proofs over the audit log (RFC 9162)."""

    path = "/api/v1/audit"
    tags = ["audit"]

    @get("/verifier-key", sync_to_thread=True)
    def verifier_key(self, runtime: RuntimeDep) -> dict[str, str]:
        """The Ed25519 verifier key (C2SP signed-note format) that checks every signed head."""
        return {"verifier_key": transparency.verifier_key(runtime.keyring.signing_key,
                                                          runtime.log_origin)}

    @get("/checkpoints/latest", sync_to_thread=True)
    def latest(self, db_session: DbSession) -> dict[str, Any]:
        """The newest signed tree head."""
        checkpoint = transparency.latest_checkpoint(db_session)
        if checkpoint is None:
            raise NotFound("No tree head has been signed yet.")
        return _head(checkpoint)

    @get("/checkpoints/{size:int}", sync_to_thread=True)
    def at_size(self, db_session: DbSession, size: LogPosition) -> dict[str, Any]:
        """The signed tree head for exactly `size` entries."""
        return _head(transparency.checkpoint_at(db_session, size))

    @get("/proofs/inclusion", sync_to_thread=True)
    def inclusion(self, db_session: DbSession, runtime: RuntimeDep, seq: LogQuery,
                  size: LogQuery) -> dict[str, Any]:
        """The audit path proving entry `seq` is leaf `seq - 1` of the tree of `size`."""
        proof = transparency.inclusion_proof(db_session, tree=runtime.audit_tree, seq=seq,
                                             size=size)
        tree = runtime.audit_tree.synced(db_session, size)
        return {"seq": seq, "leaf_index": seq - 1, "size": size,
                "leaf_hash": tree.leaf(seq - 1).hex(), "proof": [h.hex() for h in proof]}

    @get("/proofs/consistency", sync_to_thread=True)
    def consistency(self, db_session: DbSession, runtime: RuntimeDep, first: LogQuery,
                    second: LogQuery) -> dict[str, Any]:
        """The proof that the tree of `first` entries is a prefix of the tree of `second`."""
        proof = transparency.consistency_proof(db_session, tree=runtime.audit_tree, first=first,
                                               second=second)
        return {"first": first, "second": second, "proof": [h.hex() for h in proof]}
