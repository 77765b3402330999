"""The in-process delivery worker: every few seconds, deliver what is due.

Each pass runs in one transaction; on PostgreSQL rows are claimed with SKIP LOCKED, so any
number of app processes (or `cmr-vault deliver` workers) can run passes side by side.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from cmr_vault.db.session import unit_of_work
from cmr_vault.marketing import campaigns
from cmr_vault.marketing import service as marketing_service
from cmr_vault.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_pass(runtime: Runtime) -> marketing_service.DeliveryReport:
    """One pass over the due messages, committed as one transaction."""
    with unit_of_work(runtime.engine) as session:
        return marketing_service.deliver_due(session, runtime.delivery_context())


def campaign_pass(runtime: Runtime) -> int:
    """One chunk of the oldest unfinished campaign, committed as one transaction."""
    with unit_of_work(runtime.engine) as session:
        return campaigns.work(session, runtime.delivery_context())


async def run_delivery_worker(runtime: Runtime) -> None:
    """Deliver every `delivery_interval_seconds` until cancelled; failures are logged."""
    while True:
        await asyncio.sleep(runtime.settings.delivery_interval_seconds)
        try:
            while await anyio.to_thread.run_sync(campaign_pass, runtime):
                pass
            await anyio.to_thread.run_sync(deliver_pass, runtime)
        except Exception:
            log.exception("delivery pass failed; will retry")
