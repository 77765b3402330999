"""Background work on procrastinate when the vault runs on PostgreSQL.

Deliveries and campaign chunks become procrastinate jobs, so any number of `cmr-vault worker`
processes on any number of hosts share them, with retries. The outbox tables stay the source of
truth: a job only says "deliver what is due" or "work on campaigns", so a job lost between a
commit and its enqueue costs nothing but a little delay, because a periodic job does the same
every minute. On the embedded SQLite default an in-process worker does this work instead
(`marketing.worker`).
"""

from __future__ import annotations

import logging
from datetime import datetime

import procrastinate

from cmr_vault.db.migrate import job_conninfo
from cmr_vault.marketing.worker import campaign_pass, deliver_pass, event_pass, lifecycle_pass
from cmr_vault.runtime import Runtime

log = logging.getLogger(__name__)
QUEUES = ["deliveries", "campaigns"]


_APPS: dict[int, tuple[Runtime, procrastinate.App]] = {}


def job_app(runtime: Runtime) -> procrastinate.App:
    """The procrastinate app for this runtime's database, with the vault's tasks (one per
    runtime: its tasks run with that runtime's keys, clock and policy)."""
    found = _APPS.get(id(runtime))
    if found is None or found[0] is not runtime:
        found = _APPS[id(runtime)] = (runtime, _build(runtime))
    return found[1]


def _build(runtime: Runtime) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=job_conninfo(runtime.settings.resolved_database_url)))
    retry = procrastinate.RetryStrategy(max_attempts=10, exponential_wait=2)

    @app.task(name="cmr.deliver", queue="deliveries", retry=retry)
    def deliver() -> None:
        report = deliver_pass(runtime)
        log.info("delivery pass: %s", report)

    @app.task(name="cmr.campaign", queue="campaigns", retry=retry)
    def campaign() -> None:
        while campaign_pass(runtime):
            pass
        deliver.defer()

    @app.periodic(cron="* * * * *")
    @app.task(name="cmr.relay", queue="deliveries", retry=retry)
    def relay(timestamp: int) -> None:
        del timestamp
        deliver_pass(runtime)
        while campaign_pass(runtime):
            pass
        lifecycle_pass(runtime)
        event_pass(runtime)

    return app


def enqueue_delivery(runtime: Runtime, not_before: datetime | None) -> None:
    """Ask a worker to deliver what is due, now or at `not_before` for a deferred message
    (the periodic sweep is the safety net)."""
    app = job_app(runtime)
    with app.open():
        app.configure_task("cmr.deliver", schedule_at=not_before).defer()


def enqueue_campaign(runtime: Runtime) -> None:
    """Ask a worker to work on campaigns."""
    app = job_app(runtime)
    with app.open():
        app.configure_task("cmr.campaign").defer()


def run_worker(runtime: Runtime, *, wait: bool = True) -> None:
    """Run a procrastinate worker on the vault's queues (until stopped, or until idle)."""
    app = job_app(runtime)
    with app.open():
        app.run_worker(queues=QUEUES, wait=wait, install_signal_handlers=wait)

