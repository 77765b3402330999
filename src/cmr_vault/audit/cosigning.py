"""Getting each checkpoint cosigned by the witnesses an operator configured, and publishing it.

Without witnesses an operator could show customers one log and auditors another (a split
view): both would verify with the vault's key. A witness cosigns a checkpoint only when it is
consistent with every one it cosigned before (C2SP tlog-witness), so a checkpoint carrying its
cosignature is one that everybody else relying on that witness sees too. The vault submits each
new checkpoint with a consistency proof from the size the witness last cosigned; a 409 tells it
that size (another worker, or a lost answer, moved it), and the submission is retried once from
there; a 422 means the witness holds a tree this log does not extend, which is logged as the
alarm it is. The cosigned checkpoint is what `/audit/checkpoint` serves and receipts carry.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import httpx
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from cmr_vault.audit.checkpoint import CheckpointError, split_note
from cmr_vault.audit.cosignature import WitnessKey, cosignature_time, cosignatures
from cmr_vault.audit.models import AuditCheckpoint, AuditCosignature
from cmr_vault.audit.transparency import TreeCache, latest_checkpoint
from cmr_vault.db.session import unit_of_work

log = logging.getLogger(__name__)

SUBMIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class WitnessEndpoint:
    """A configured witness: its key, and the URL prefix it takes submissions at."""

    key: WitnessKey
    url: str
    verifier_key: str

    @property
    def name(self) -> str:
        """The witness's key name, as its cosignature lines carry it."""
        return self.key.name

    @classmethod
    def parse(cls, setting: str) -> WitnessEndpoint:
        """From one `witnesses` setting: '<submission URL> <witness verifier key>'."""
        url, _, verifier_key = setting.strip().partition(" ")
        if not url.startswith(("https://", "http://")) or not verifier_key.strip():
            raise ValueError(f"a witness is '<URL> <verifier key>', not {setting!r}")
        return cls(WitnessKey.parse(verifier_key.strip()), url.rstrip("/"), verifier_key.strip())


def configured_witnesses(settings: list[str]) -> list[WitnessEndpoint]:
    """Every witness the operator configured, in order."""
    return [WitnessEndpoint.parse(setting) for setting in settings]


class Outcome(StrEnum):
    """What one witness did with one checkpoint."""

    COSIGNED = "cosigned"
    REFUSED = "refused"
    """422: the witness holds a tree this checkpoint does not extend (split view or rollback)."""
    AHEAD = "ahead"
    """409 with a size above this checkpoint's: the witness saw a larger tree of this log."""
    FAILED = "failed"
    """Unreachable, or an answer that is not a valid cosignature."""


@dataclass(frozen=True)
class CosignResult:
    """One witness's answer to one submission."""

    witness: str
    size: int
    outcome: Outcome
    detail: str = ""


def cosigned_size(session: Session, witness: str) -> int:
    """The largest checkpoint size `witness` has cosigned for this log, as far as stored."""
    size = session.execute(
        select(func.max(AuditCosignature.size)).where(AuditCosignature.witness == witness)
    ).scalar()
    return int(size or 0)


def cosigned_note(session: Session, checkpoint: AuditCheckpoint) -> str:
    """The checkpoint's note with every stored cosignature appended."""
    lines = session.exec(
        select(AuditCosignature.line)  # type: ignore[call-overload]
        .where(AuditCosignature.size == checkpoint.size)
        .order_by(col(AuditCosignature.witness))
    ).all()
    return checkpoint.note + "".join(f"{line[0]}\n" for line in lines)


def cosigners(note: str, witnesses: list[WitnessEndpoint]) -> dict[str, int]:
    """Configured witness name -> timestamp of its valid cosignature on `note`."""
    return cosignatures(note, [w.key for w in witnesses])


def published_checkpoint(session: Session, names: list[str]) -> AuditCheckpoint | None:
    """The checkpoint to publish: the newest one every witness in `names` has cosigned, or
    the newest one when no witness is configured or none has cosigned yet."""
    if names:
        size = session.execute(
            select(AuditCosignature.size)
            .where(col(AuditCosignature.witness).in_(names))
            .group_by(AuditCosignature.size)
            .having(func.count(func.distinct(AuditCosignature.witness)) == len(names))
            .order_by(col(AuditCosignature.size).desc())
            .limit(1)
        ).scalar()
        if size is not None:
            return session.get(AuditCheckpoint, size)
    return latest_checkpoint(session)


def _request_body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def _submission(
    engine: Engine, *, tree: TreeCache, size: int, old: int | None, witness: str
) -> tuple[int, bytes] | None:
    """(old size, request body) for the checkpoint of `size`, read in a short transaction of
    its own: no database lock is held while a witness answers."""
    with unit_of_work(engine) as session:
        checkpoint = session.get(AuditCheckpoint, size)
        if checkpoint is None:
            return None
        old = min(cosigned_size(session, witness), size) if old is None else old
        proof = tree.synced(session, size).consistency_proof(old, size) if 0 < old < size else []
        return old, _request_body(old, proof, checkpoint.note)


def _cosign_one(
    engine: Engine, *, tree: TreeCache, size: int, witness: WitnessEndpoint, client: httpx.Client
) -> CosignResult:
    submission = _submission(engine, tree=tree, size=size, old=None, witness=witness.name)
    if submission is None:
        return CosignResult(witness.name, size, Outcome.FAILED, "no such checkpoint")
    url = f"{witness.url}/add-checkpoint"
    answer = client.post(url, content=submission[1], timeout=SUBMIT_TIMEOUT_SECONDS)
    if answer.status_code == 409:
        known = answer.text.strip()
        if not known.isdigit():
            return CosignResult(witness.name, size, Outcome.FAILED, "409 without a size")
        if int(known) > size:
            log.error(
                "witness %s has cosigned %s entries of this log, more than the %d it "
                "was shown: the log was rolled back, or shown to it forked",
                witness.name,
                known,
                size,
            )
            return CosignResult(witness.name, size, Outcome.AHEAD, f"witness holds {known}")
        submission = _submission(engine, tree=tree, size=size, old=int(known), witness=witness.name)
        if submission is None:
            return CosignResult(witness.name, size, Outcome.FAILED, "no such checkpoint")
        answer = client.post(url, content=submission[1], timeout=SUBMIT_TIMEOUT_SECONDS)
    if answer.status_code == 422:
        log.error(
            "witness %s refused checkpoint %d as inconsistent with the tree it "
            "cosigned: a split view or a rollback of this log",
            witness.name,
            size,
        )
        return CosignResult(witness.name, size, Outcome.REFUSED, answer.text.strip())
    if answer.status_code != 200:
        return CosignResult(
            witness.name,
            size,
            Outcome.FAILED,
            f"HTTP {answer.status_code}: {answer.text.strip()[:200]}",
        )
    return _store(engine, size=size, witness=witness, answer=answer.text)


def _store(engine: Engine, *, size: int, witness: WitnessEndpoint, answer: str) -> CosignResult:
    """Keep the witness's cosignature once it verifies on the checkpoint's body."""
    with unit_of_work(engine) as session:
        checkpoint = session.get(AuditCheckpoint, size)
        if checkpoint is None:
            return CosignResult(witness.name, size, Outcome.FAILED, "no such checkpoint")
        body, _ = split_note(checkpoint.note)
        for line in answer.splitlines():
            timestamp = cosignature_time(body, line, witness.key)
            if timestamp is not None:
                session.merge(
                    AuditCosignature(
                        size=size,
                        witness=witness.name,
                        line=line,
                        cosigned_at=datetime.fromtimestamp(timestamp, UTC),
                    )
                )
                return CosignResult(witness.name, size, Outcome.COSIGNED)
    return CosignResult(witness.name, size, Outcome.FAILED, "no cosignature by its key")


def request_cosignatures(
    engine: Engine,
    *,
    tree: TreeCache,
    size: int,
    witnesses: list[WitnessEndpoint],
    client: httpx.Client,
) -> list[CosignResult]:
    """Submit the checkpoint of `size` to every witness; store each valid cosignature.

    Each witness is asked on its own; one that is down or refuses does not hold up the
    others. Nothing here raises for a witness's answer: the results say what happened.
    """
    results = []
    for witness in witnesses:
        try:
            results.append(
                _cosign_one(engine, tree=tree, size=size, witness=witness, client=client)
            )
        except (httpx.HTTPError, CheckpointError) as exc:
            log.warning("witness %s did not cosign checkpoint %d: %s", witness.name, size, exc)
            results.append(CosignResult(witness.name, size, Outcome.FAILED, str(exc)))
    return results


def needs_cosigning(
    session: Session, witnesses: list[WitnessEndpoint], *, now: datetime, refresh_seconds: float
) -> int | None:
    """The size of the newest checkpoint when some witness has not cosigned it, or cosigned it
    more than `refresh_seconds` ago (a quiet log still needs fresh cosignatures)."""
    newest = latest_checkpoint(session)
    if newest is None or not witnesses:
        return None
    rows = dict(
        session.execute(
            select(AuditCosignature.witness, AuditCosignature.cosigned_at).where(  # type: ignore[call-overload]
                AuditCosignature.size == newest.size
            )
        ).all()
    )
    for witness in witnesses:
        at = rows.get(witness.name)
        if at is None or (now - at).total_seconds() > refresh_seconds:
            return newest.size
    return None
