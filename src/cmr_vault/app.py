"""`create_app(settings)`: the Litestar application, wired once.

Routes, dependency injection, templates, CSRF, security headers and the one exception handler
are all set up here, so a reader finds the whole shape of the web side in one file.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
from litestar import Litestar, Request, get
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy import text

from cmr_vault import __version__
from cmr_vault.accounts import service as accounts_service
from cmr_vault.audit.controllers import TransparencyApi
from cmr_vault.audit.signer import check_not_rolled_back, run_periodic_signer
from cmr_vault.auditor.controllers import AuditorApi, AuditorPages
from cmr_vault.consent.controllers import CompanyEventsApi, CompanyGrantsApi, ReceiptsApi
from cmr_vault.db.engine import IMMEDIATE_OPTION, check_durability
from cmr_vault.db.session import end_abandoned_transaction, provide_db_session, sqlite_gate
from cmr_vault.deps import RuntimeDep, provide_runtime
from cmr_vault.errors import Unavailable
from cmr_vault.intents.controllers import CompanyIntentsApi, IntentPages
from cmr_vault.marketing.controllers import (
    CampaignsApi,
    OptInLinks,
    PreferencePages,
    PushesApi,
)
from cmr_vault.marketing.worker import run_delivery_worker
from cmr_vault.measurement.controllers import MeasurementApi
from cmr_vault.oauth.admin import AdminClientsApi
from cmr_vault.oauth.controllers import AuthorizationPages, TokenEndpoints, server_metadata
from cmr_vault.portal.controllers import (
    AccountPages,
    ActivityPage,
    ConnectionsPage,
    ProfilePages,
    ReceiptsPage,
)
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, check_startup_safety, get_settings
from cmr_vault.vault.controllers import CompanyProfileApi
from cmr_vault.web import openapi
from cmr_vault.web.bodies import prepare_request
from cmr_vault.web.errors import document_problems, exception_to_http_response
from cmr_vault.web.headers import CompleteAllowHeader, security_headers_middleware

# API clients authenticate with bearer tokens or client credentials, not cookies, so CSRF does
# not apply to them; unsubscribe links carry their own unguessable token (RFC 8058 one-click
# POSTs come from mail clients, which cannot hold a CSRF cookie). Every cookie form is covered.
CSRF_EXEMPT = [r"^/api/", r"^/oauth/(token|revoke|introspect)$", r"^/unsubscribe/"]


HEALTH_DATABASE_WAIT_SECONDS = 3.0


def _select_one(runtime: Runtime) -> None:
    # A deferred transaction: a health check has no reason to queue for the write lock.
    with runtime.engine.connect() as conn:
        conn.execution_options(**{IMMEDIATE_OPTION: False}).execute(text("SELECT 1"))


@get("/health", tags=["operations"])
async def health(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
    """Liveness and database reachability, for load balancers.

    On SQLite it waits for its turn at the gate like any request, but only for a few seconds:
    a database every request queues behind is stuck, even if it would still answer SELECT 1.
    """
    gate = sqlite_gate(request.app.state)
    if gate is None:
        await anyio.to_thread.run_sync(_select_one, runtime)
        return {"status": "ok", "version": __version__}
    try:
        async with asyncio.timeout(HEALTH_DATABASE_WAIT_SECONDS):
            await gate.acquire()
    except TimeoutError:
        raise Unavailable(
            f"Requests have waited over {HEALTH_DATABASE_WAIT_SECONDS:g} s for the database.",
            retry_after=5) from None
    try:
        await anyio.to_thread.run_sync(_select_one, runtime)
    finally:
        gate.release()
    return {"status": "ok", "version": __version__}


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Litestar:
    """Build the app; refuses unsafe settings before anything listens."""
    check_startup_safety(settings)
    runtime = runtime or Runtime.build(settings)

    signer: list[asyncio.Task[None]] = []

    def on_startup(app: Litestar) -> None:
        check_durability(runtime.engine)
        accounts_service.bound_concurrent_hashing(settings.password_hashes_at_once)
        runtime.data_keys.create_schema()
        check_not_rolled_back(runtime)
        app.state.runtime = runtime
        app.state.engine = runtime.engine
        # One gate per event loop (a process serves from one; test clients bring their own).
        app.state.db_gates = {} if runtime.engine.dialect.name == "sqlite" else None
        runtime.policy.install_sighup_handler()
        if settings.checkpoint_interval_seconds > 0:
            signer.append(asyncio.create_task(run_periodic_signer(runtime)))
        # On PostgreSQL `cmr-vault worker` processes (procrastinate) do this work instead.
        if settings.delivery_interval_seconds > 0 and not settings.uses_job_engine:
            signer.append(asyncio.create_task(run_delivery_worker(runtime)))

    def on_shutdown() -> None:
        for task in signer:
            task.cancel()
        runtime.dispose()

    app = Litestar(
        route_handlers=[
            health,
            AccountPages,
            ProfilePages,
            ActivityPage,
            ConnectionsPage,
            ReceiptsPage,
            AuthorizationPages,
            TokenEndpoints,
            server_metadata,
            CompanyGrantsApi,
            CompanyEventsApi,
            ReceiptsApi,
            CompanyIntentsApi,
            IntentPages,
            MeasurementApi,
            CompanyProfileApi,
            AdminClientsApi,
            PushesApi,
            CampaignsApi,
            PreferencePages,
            OptInLinks,
            AuditorPages,
            AuditorApi,
            TransparencyApi,
            create_static_files_router(
                path="/static",
                directories=[settings.templates_dir / "static"],
                include_in_schema=False,
            ),
        ],
        dependencies={
            "db_session": Provide(provide_db_session),
            "runtime": Provide(provide_runtime, sync_to_thread=False),
        },
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        template_config=TemplateConfig(
            directory=settings.templates_dir, engine=JinjaTemplateEngine
        ),
        csrf_config=CSRFConfig(
            secret=runtime.keyring.csrf_secret.hex(),
            cookie_name="__Host-cmr_csrf" if settings.secure_cookies else "cmr_csrf",
            cookie_secure=settings.secure_cookies,
            cookie_httponly=True,
            cookie_samesite="lax",
            exclude=CSRF_EXEMPT,
        ),
        openapi_config=OpenAPIConfig(
            title="CMR Vault API",
            version=__version__,
            path="/schema",
            # JSON and YAML only: the HTML viewers load scripts from CDNs, which the CSP forbids.
            render_plugins=[openapi.FaithfulJsonRender(path=["/", "/openapi.json"]),
                            openapi.FaithfulYamlRender()],
            components=openapi.components(settings),
        ),
        exception_handlers={Exception: exception_to_http_response},
        before_request=prepare_request,
        after_exception=[end_abandoned_transaction],
        middleware=[security_headers_middleware(hsts=not settings.is_loopback_http),
                    CompleteAllowHeader],
        logging_config=LoggingConfig(
            root={"level": settings.log_level, "handlers": ["queue_listener"]},
        ),
        # Profiles, consents and pushes are small: a megabyte is generous and bounds memory.
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    document_problems(app)
    return app


def create_app_from_env() -> Litestar:
    """The uvicorn factory for `cmr-vault serve` workers."""
    logging.captureWarnings(True)
    return create_app(get_settings())
