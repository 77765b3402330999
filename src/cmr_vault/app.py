"""`create_app(settings)`: the Litestar application, wired once.

Routes, dependency injection, templates, CSRF, security headers and the one exception handler
are all set up here, so a reader finds the whole shape of the web side in one file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any, TypedDict

import anyio.to_thread
from litestar import Litestar, Request, get
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy import text

from cmr_vault import __version__
from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.controllers import ConfirmationPages, RecoveryPages
from cmr_vault.accounts.deps import session_cookie_name
from cmr_vault.audit.controllers import TiledLog, TransparencyApi
from cmr_vault.audit.signer import check_not_rolled_back, run_periodic_signer
from cmr_vault.auditor.controllers import AuditorApi, AuditorPages
from cmr_vault.consent.controllers import CompanyEventsApi, CompanyGrantsApi, ReceiptsApi
from cmr_vault.db.engine import IMMEDIATE_OPTION, POOL_SIZE, SQLITE_READ_TURNS, check_durability
from cmr_vault.db.session import database_gate, end_abandoned_transaction, provide_db_session
from cmr_vault.deps import RuntimeDep, provide_runtime
from cmr_vault.errors import Unavailable
from cmr_vault.i18n.controllers import LanguageSwitch
from cmr_vault.i18n.web import LanguageMiddleware, install_in_templates
from cmr_vault.intents.controllers import CompanyIntentsApi, IntentPages
from cmr_vault.marketing.controllers import (
    CampaignsApi,
    OptInLinks,
    PreferencePages,
    PushesApi,
)
from cmr_vault.marketing.worker import run_delivery_worker
from cmr_vault.measurement.controllers import CompanyPages, MeasurementApi
from cmr_vault.measurement.deps import company_cookie_name
from cmr_vault.oauth.admin import AdminClientsApi
from cmr_vault.oauth.controllers import AuthorizationPages, TokenEndpoints, server_metadata
from cmr_vault.oauth.discovery import (
    api_resource_metadata,
    openid_configuration_document,
    vault_resource_metadata,
)
from cmr_vault.oauth.userinfo import UserInfoApi
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
from cmr_vault.vault.shredding import run_periodic_shredder
from cmr_vault.web import openapi
from cmr_vault.web.admission import ShedWhenFull
from cmr_vault.web.bodies import prepare_request
from cmr_vault.web.csrf import SessionBoundCSRF, csrf_cookie_name
from cmr_vault.web.errors import document_problems, exception_to_http_response
from cmr_vault.web.headers import CompleteAllowHeader, security_headers_middleware
from cmr_vault.web.metrics import metrics

# API clients authenticate with bearer tokens or client credentials, not cookies, so CSRF does
# not apply to them; unsubscribe links carry their own unguessable token (RFC 8058 one-click
# POSTs come from mail clients, which cannot hold a CSRF cookie). Every cookie form is covered.
# Machine endpoints and probes: they take no form, so a CSRF cookie would only be churn.
CSRF_EXEMPT = [r"^/api/", r"^/oauth/(token|revoke|introspect|userinfo|par)$", r"^/unsubscribe/",
               r"^/(health|metrics)$"]


class HealthDocument(TypedDict):
    """The vault is up and its database answers."""

    status: str
    version: str


HEALTH_DATABASE_WAIT_SECONDS = 3.0
# A request waits at most this long for a database turn: the pool's own timeout.
DATABASE_WAIT_SECONDS = 10.0


def _select_one(runtime: Runtime) -> None:
    # A deferred transaction: a health check has no reason to queue for the write lock.
    with runtime.engine.connect() as conn:
        conn.execution_options(**{IMMEDIATE_OPTION: False}).execute(text("SELECT 1"))


@get("/health", tags=["operations"])
async def health(request: Request[Any, Any, Any], runtime: RuntimeDep) -> HealthDocument:
    """Liveness and database reachability, for load balancers.

    It never queues behind requests: a busy vault whose requests come and go is healthy, but
    one where every database turn is taken and none came back for a few seconds is stuck, even
    if the database would still answer SELECT 1. The SELECT 1 is a read on a connection of its
    own (the pool's overflow), bounded by the same few seconds.
    """
    gate = database_gate(request.app.state)
    if not await gate.moving(within=HEALTH_DATABASE_WAIT_SECONDS):
        raise Unavailable(
            f"Requests have waited over {HEALTH_DATABASE_WAIT_SECONDS:g} s for the database.",
            retry_after=5)
    try:
        async with asyncio.timeout(HEALTH_DATABASE_WAIT_SECONDS):
            await anyio.to_thread.run_sync(_select_one, runtime, abandon_on_cancel=True)
    except TimeoutError:
        raise Unavailable(
            f"The database did not answer within {HEALTH_DATABASE_WAIT_SECONDS:g} s.",
            retry_after=5) from None
    return {"status": "ok", "version": __version__}


def _csrf_protection(settings: Settings, runtime: Runtime) -> DefineMiddleware:
    """Litestar's double-submit cookie, its token bound to the session (see web.csrf)."""
    config = CSRFConfig(
        secret=runtime.keyring.csrf_secret.hex(),
        cookie_name=csrf_cookie_name(secure=settings.secure_cookies),
        cookie_secure=settings.secure_cookies,
        cookie_httponly=True,
        cookie_samesite="lax",
        exclude=CSRF_EXEMPT,
    )
    return DefineMiddleware(SessionBoundCSRF, config=config,
                            session_cookie=session_cookie_name(runtime),
                            other_session_cookies=(company_cookie_name(runtime),))


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
        app.state.db_gates = {}
        app.state.db_gate_limits = {
            "capacity": settings.database_turns or (
                1 if runtime.engine.dialect.name == "sqlite" else POOL_SIZE),
            "queue": settings.database_queue, "max_wait": DATABASE_WAIT_SECONDS,
            # SQLite readers never wait for its writer: reads get turns of their own.
            "read_capacity": (settings.database_turns or SQLITE_READ_TURNS)
            if runtime.engine.dialect.name == "sqlite" else None}
        runtime.policy.install_sighup_handler()
        if settings.checkpoint_interval_seconds > 0:
            signer.append(asyncio.create_task(run_periodic_signer(runtime)))
        signer.append(asyncio.create_task(run_periodic_shredder(runtime)))
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
            metrics,
            AccountPages,
            RecoveryPages,
            ConfirmationPages,
            ProfilePages,
            ActivityPage,
            ConnectionsPage,
            ReceiptsPage,
            AuthorizationPages,
            TokenEndpoints,
            server_metadata,
            openid_configuration_document,
            api_resource_metadata,
            vault_resource_metadata,
            UserInfoApi,
            CompanyGrantsApi,
            CompanyEventsApi,
            ReceiptsApi,
            CompanyIntentsApi,
            IntentPages,
            MeasurementApi,
            CompanyPages,
            CompanyProfileApi,
            AdminClientsApi,
            PushesApi,
            CampaignsApi,
            PreferencePages,
            OptInLinks,
            AuditorPages,
            AuditorApi,
            TransparencyApi,
            TiledLog,
            openapi.docs_assets_router(),
            LanguageSwitch,
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
            directory=settings.templates_dir, engine=JinjaTemplateEngine,
            engine_callback=install_in_templates,
        ),
        openapi_config=OpenAPIConfig(
            title="CMR Vault API",
            version=__version__,
            path="/schema",
            # The reference page first (the one at /schema); its assets are served by the vault.
            render_plugins=[openapi.reference_page(),
                            openapi.FaithfulJsonRender(path=["/openapi.json"]),
                            openapi.FaithfulYamlRender()],
            openapi_router=openapi.docs_router(),
            components=openapi.components(settings),
        ),
        exception_handlers={Exception: exception_to_http_response},
        before_request=prepare_request,
        after_exception=[end_abandoned_transaction],
        middleware=[LanguageMiddleware,
                    security_headers_middleware(hsts=not settings.is_loopback_http),
                    ShedWhenFull, CompleteAllowHeader, _csrf_protection(settings, runtime)],
        logging_config=LoggingConfig(
            root={"level": settings.log_level, "handlers": ["queue_listener"]},
            loggers={**LoggingConfig().loggers, **QUIET_LIBRARY_LOGGERS},
        ),
        # Profiles, consents and pushes are small: a megabyte is generous and bounds memory.
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    document_problems(app)
    return app


# Libraries that log what the vault must not write down, at INFO or DEBUG: httpx's request line
# and httpcore's connection trace name the customer's own app address (a push endpoint);
# authlib's debug lines print issued access and refresh tokens. They log only warnings and
# errors, whatever the root level.
QUIET_LIBRARY_LOGGERS: dict[str, dict[str, Any]] = {
    name: {"level": "WARNING"} for name in ("httpx", "httpcore", "authlib")
}


def create_app_from_env() -> Litestar:
    """The uvicorn factory for `cmr-vault serve` workers."""
    logging.captureWarnings(True)
    # Receipts and id_tokens say `EdDSA` on purpose (RFC 9864's `Ed25519` is not yet widely
    # verified): joserfc's notice of the newer name, on every signature, is not news to operators.
    warnings.filterwarnings("ignore", message="EdDSA is deprecated via RFC 9864")
    app = create_app(get_settings())
    # What is loaded by now (modules, the app, its routes) lives as long as the worker: out of
    # the collector's sight, a full collection no longer walks its ~150,000 objects. A campaign
    # dry run of 300,000 subjects spent 4.4 s of its 23 s in those walks; 1.4 s after.
    gc.freeze()
    return app
