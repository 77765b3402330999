"""What `audit verify` adds when witnesses are configured: cosignatures, freshness, split views.

`verify` proves the stored checkpoints match the entries; that says nothing about what others
were shown. A witness remembers the newest checkpoint it cosigned for this log, so the auditor
asks each configured witness for it (the monitoring API of C2SP tlog-witness) and compares it
with the log: a witness holding another root for a size the log has is a split view; a
witness holding a larger tree than the log is a rollback. And a witness that has not cosigned
anything lately protects nobody, so a log without a fresh cosignature from every configured
witness is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlmodel import Session

from cmr_vault.audit.checkpoint import Checkpoint, CheckpointError, split_note, verify_checkpoint
from cmr_vault.audit.cosignature import cosignature_time, cosignatures, origin_hash
from cmr_vault.audit.cosigning import WitnessEndpoint
from cmr_vault.audit.models import AuditCheckpoint, AuditCosignature
from cmr_vault.audit.transparency import latest_checkpoint, log_size

FETCH_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class WitnessView:
    """The newest checkpoint a witness cosigned for this log, as it told the auditor."""

    witness: str
    checkpoint: Checkpoint
    cosigned_at: int


def fetch_views(
    witnesses: list[WitnessEndpoint],
    *,
    origin: str,
    log_key: Ed25519PublicKey,
    log_key_name: str,
    client: httpx.Client,
) -> tuple[list[WitnessView], list[str]]:
    """Each witness's view of the log, checked with the log's key and the witness's key;
    and, for the witnesses that could not be asked, why."""
    views, unreachable = [], []
    for witness in witnesses:
        url = f"{witness.url}/{origin_hash(origin)}/checkpoint"
        try:
            answer = client.get(url, timeout=FETCH_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            unreachable.append(f"witness {witness.name} could not be asked ({exc})")
            continue
        if answer.status_code == 404:
            continue
        if answer.status_code != 200:
            unreachable.append(f"witness {witness.name} answered HTTP {answer.status_code}")
            continue
        try:
            checkpoint = verify_checkpoint(answer.text, log_key, log_key_name)
            timestamp = cosignatures(answer.text, [witness.key]).get(witness.name)
        except CheckpointError as exc:
            unreachable.append(
                f"witness {witness.name} served a checkpoint that does not verify ({exc})"
            )
            continue
        if timestamp is not None and checkpoint.origin == origin:
            views.append(WitnessView(witness.name, checkpoint, timestamp))
    return views, unreachable


def _stored_cosignatures(
    session: Session, witnesses: list[WitnessEndpoint], problems: list[str]
) -> dict[str, tuple[int, int]]:
    """Witness name -> (newest size, newest timestamp) among the stored cosignatures that
    verify; a stored one that does not verify is a problem."""
    by_name = {w.name: w for w in witnesses}
    newest: dict[str, tuple[int, int]] = {}
    rows = session.execute(
        select(AuditCosignature, AuditCheckpoint.note).join(
            AuditCheckpoint, AuditCheckpoint.size == AuditCosignature.size
        )
    ).all()  # type: ignore[arg-type]
    for cosignature, note in rows:
        witness = by_name.get(cosignature.witness)
        if witness is None:
            continue
        body, _ = split_note(note)
        try:
            timestamp = cosignature_time(body, cosignature.line, witness.key)
        except CheckpointError:
            timestamp = None
        if timestamp is None:
            problems.append(
                f"the stored cosignature by {witness.name} on checkpoint "
                f"{cosignature.size} does not verify"
            )
            continue
        size, at = newest.get(witness.name, (0, 0))
        newest[witness.name] = (max(size, cosignature.size), max(at, timestamp))
    return newest


def witness_problems(
    session: Session,
    *,
    witnesses: list[WitnessEndpoint],
    views: list[WitnessView],
    now: datetime,
    max_age: timedelta,
) -> list[str]:
    """Everything wrong between the log and its witnesses; empty when all is well."""
    problems: list[str] = []
    newest = _stored_cosignatures(session, witnesses, problems)
    size = log_size(session)
    for view in views:
        held = view.checkpoint
        stored = session.get(AuditCheckpoint, held.size)
        if held.size > size:
            problems.append(
                f"rollback: witness {view.witness} cosigned a tree of {held.size} "
                f"entries, but the log holds {size}"
            )
        elif stored is None:
            problems.append(
                f"checkpoint {held.size}, which witness {view.witness} cosigned, "
                "is missing from the log"
            )
        elif stored.root_hash != held.root_hash.hex():
            problems.append(
                f"split view: witness {view.witness} cosigned another tree of "
                f"{held.size} entries (root {held.root_hash.hex()}) than the log "
                f"holds (root {stored.root_hash})"
            )
        seen = newest.get(view.witness, (0, 0))
        newest[view.witness] = (max(seen[0], held.size), max(seen[1], view.cosigned_at))
    oldest_allowed = (now - max_age).timestamp()
    latest = latest_checkpoint(session)
    for witness in witnesses:
        cosigned_size, at = newest.get(witness.name, (0, 0))
        if at < oldest_allowed:
            when = datetime.fromtimestamp(at, now.tzinfo).isoformat() if at else "never"
            problems.append(
                f"witness {witness.name} has not cosigned this log within "
                f"{int(max_age.total_seconds())} s (last: {when})"
            )
        elif (
            latest is not None
            and latest.signed_at.timestamp() < oldest_allowed
            and cosigned_size < latest.size
        ):
            problems.append(
                f"checkpoint {latest.size}, signed at "
                f"{latest.signed_at.isoformat()}, has not been cosigned by "
                f"{witness.name} within {int(max_age.total_seconds())} s"
            )
    return problems
