"""The periodic signer: a fresh signed tree head whenever the log has grown.

Each worker runs one. Two workers signing the same size compute the same root, and the
checkpoint table's primary key lets only one insert win, so the race is harmless.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread
from sqlalchemy.exc import IntegrityError

from cmr_vault.audit import transparency, witness
from cmr_vault.db.session import unit_of_work
from cmr_vault.runtime import Runtime

log = logging.getLogger(__name__)


def sign_once(runtime: Runtime) -> int | None:
    """Sign the current head if the log grew; the new checkpoint's size, or None.

    Then the key store's witness moves up to the newest head, which is committed by now (a
    receipt or an export may have signed one since the last pass).
    """
    try:
        with unit_of_work(runtime.engine) as session:
            checkpoint = transparency.sign_if_grown(
                session, tree=runtime.audit_tree, seed=runtime.keyring.signing_key,
                origin=runtime.log_origin, clock=runtime.clock,
            )
            newest = transparency.latest_checkpoint(session)
    except IntegrityError:
        return None
    if newest is not None:
        witness.remember(runtime.keystore_engine, newest)
    return checkpoint.size if checkpoint else None


async def run_periodic_signer(runtime: Runtime) -> None:
    """Sign every `checkpoint_interval_seconds` until cancelled; errors are logged, not fatal."""
    interval = runtime.settings.checkpoint_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(sign_once, runtime)
        except Exception:
            log.exception("signing the audit tree head failed; will retry")


def check_not_rolled_back(runtime: Runtime) -> None:
    """Refuse to start on a log that fell behind the key store's witness (`audit.witness`)."""
    with unit_of_work(runtime.engine) as session:
        witness.check_not_rolled_back(session, runtime.keystore_engine)
