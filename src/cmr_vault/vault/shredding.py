"""The shredder: destroys, on time, the epoch key that seals erased customers' key residue.

Erasure deletes a customer's data key at once, but PostgreSQL keeps the deleted tuple (and its
WAL) and only the epoch seal protects it (`crypto.epochs`). Each serving process runs one
shredder; they take turns on the epoch file's lock, and a pass with nothing due reads one row.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from cmr_vault.audit import service as audit_service
from cmr_vault.crypto.data_keys import ShredReport
from cmr_vault.db.session import unit_of_work
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings

log = logging.getLogger(__name__)


def check_interval(settings: Settings) -> float:
    """How often a shredder looks: at most a minute, so destruction is never that late."""
    return min(60.0, settings.erasure_shred_seconds / 4)


def shred_once(runtime: Runtime, *, force: bool = False, actor: str = "system:keys"
               ) -> ShredReport:
    """Rotate the epoch and destroy the old epoch keys if an erasure made it due (or `force`).

    Destroyed epochs go to the audit log, by count: epoch ids are not secret but say nothing.
    """
    report = runtime.data_keys.shred(runtime.clock.now(), force=force)
    if report.destroyed:
        with unit_of_work(runtime.engine) as session:
            audit_service.record(
                session,
                clock=runtime.clock,
                event=audit_service.AuditEvent(
                    actor=actor,
                    action="keys.shredded",
                    resource="epoch-keys",
                    details={"epochs_destroyed": len(report.destroyed),
                             "resealed": report.resealed},
                ),
            )
    return report


async def run_periodic_shredder(runtime: Runtime) -> None:
    """Look every `check_interval` until cancelled; errors are logged, not fatal."""
    interval = check_interval(runtime.settings)
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(shred_once, runtime)
        except Exception:
            log.exception("shredding erased keys' epoch failed; will retry")
