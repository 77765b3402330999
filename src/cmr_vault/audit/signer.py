"""The periodic signer: a fresh signed tree head whenever the log has grown.

Each worker runs one. Two workers signing the same size compute the same root, and the
checkpoint table's primary key lets only one insert win, so the race is harmless.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread
import httpx
from sqlalchemy.exc import IntegrityError

from cmr_vault.audit import cosigning, transparency, witness
from cmr_vault.db.session import unit_of_work
from cmr_vault.runtime import Runtime

log = logging.getLogger(__name__)


def sign_once(runtime: Runtime) -> int | None:
    """Sign the current head if the log grew; the new checkpoint's size, or None.

    Then the key store's witness moves up to the newest head, which is committed by now (a
    receipt or an export may have signed one since the last pass), and the configured witnesses
    are asked to cosign it (`cosign_newest`).
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
        cosign_newest(runtime)
    return checkpoint.size if checkpoint else None


def cosign_newest(runtime: Runtime) -> list[cosigning.CosignResult]:
    """Ask the configured witnesses to cosign the newest checkpoint, when one of them has not,
    or did so more than half of `witness_max_age_seconds` ago."""
    witnesses = runtime.witnesses
    if not witnesses:
        return []
    with unit_of_work(runtime.engine) as session:
        size = cosigning.needs_cosigning(
            session, witnesses, now=runtime.clock.now(),
            refresh_seconds=runtime.settings.witness_max_age_seconds / 2)
    if size is None:
        return []
    with httpx.Client() as client:
        return cosigning.request_cosignatures(runtime.engine, tree=runtime.audit_tree,
                                              size=size, witnesses=witnesses, client=client)


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
