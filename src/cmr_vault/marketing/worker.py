"""The in-process worker: every few seconds, deliver what is due (messages, company events)
and keep consents current (reminders before a lapse, the record of one after).

Each pass runs in one transaction; on PostgreSQL rows are claimed with SKIP LOCKED, so any
number of app processes (or `cmr-vault deliver` workers) can run passes side by side.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from cmr_vault.consent import events
from cmr_vault.consent import service as consent_service
from cmr_vault.db.session import unit_of_work
from cmr_vault.marketing import campaigns
from cmr_vault.marketing import service as marketing_service
from cmr_vault.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_pass(runtime: Runtime) -> marketing_service.DeliveryReport:
    """One pass over the due messages, committed as one transaction."""
    with unit_of_work(runtime.engine) as session:
        return marketing_service.deliver_due(session, runtime.delivery_context())


def lifecycle_pass(runtime: Runtime) -> int:
    """Remind before permissions lapse and record those that did: one transaction."""
    with unit_of_work(runtime.engine) as session:
        ctx = runtime.consent_context()
        return (consent_service.remind_due(session, ctx) + consent_service.lapse_due(session, ctx)
                + marketing_service.remind_opt_ins(session, ctx)
                + marketing_service.lapse_opt_ins(session, ctx))


def event_pass(runtime: Runtime) -> events.EventDelivery:
    """Deliver due company events to their webhooks: one transaction."""
    with unit_of_work(runtime.engine) as session:
        return events.deliver_due(session, clock=runtime.clock, cipher=runtime.cipher,
                                  allow_loopback=runtime.settings.webhook_allow_loopback)


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
            await anyio.to_thread.run_sync(lifecycle_pass, runtime)
            await anyio.to_thread.run_sync(event_pass, runtime)
        except Exception:
            log.exception("delivery pass failed; will retry")
