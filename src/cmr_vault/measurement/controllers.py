"""The company's figures: as JSON for its scripts (HTTP Basic with the client credentials), and
as a dashboard in the browser after signing in with the same credentials (a session cookie)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import TooManyRequests
from cmr_vault.i18n import gettext as _
from cmr_vault.measurement import service as measurement_service
from cmr_vault.measurement import sign_in
from cmr_vault.measurement.dashboard import dashboard_charts
from cmr_vault.measurement.deps import (
    MaybeCompany,
    company_cookie_name,
    company_token,
    provide_signed_in_company,
)
from cmr_vault.oauth.deps import CompanyClient, provide_company_client
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.portal.forms import form_text
from cmr_vault.web.openapi import COMPANY_CLIENT

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
DASHBOARD = "/company/dashboard"


def _figures(
    client: OAuthClient, db_session: DbSession, runtime: RuntimeDep
) -> measurement_service.Figures:
    return measurement_service.figures_for(
        db_session,
        client_id=client.client_id,
        now=runtime.clock.now(),
        threshold=runtime.settings.k_anonymity_threshold,
    )


class MeasurementDocument(TypedDict):
    """The company's figures; a count from 1 to `suppressed_below` - 1 is None."""

    company: str
    suppressed_below: int
    grants: dict[str, int | None]
    opt_in_rates: dict[str, float | None]
    pushes: dict[str, int | None]
    refusals_by_rule: dict[str, int | None]
    intents: dict[str, int | None]
    offers: dict[str, int | None]


class MeasurementApi(Controller):
    """Aggregate figures about the company's relationships; small counts are suppressed."""

    tags = ["measurement"]
    security = COMPANY_CLIENT
    dependencies = {"company": Provide(provide_company_client, sync_to_thread=True)}

    @get("/api/v1/measurement", sync_to_thread=True)
    def figures(self, company: CompanyClient, db_session: DbSession,
                runtime: RuntimeDep) -> MeasurementDocument:
        """Grants, opt-in rates, pushes, refusals by rule, intents and offers."""
        return {"company": company.client_id, **_figures(company, db_session, runtime).document()}


def _signin_page(status: int = 200, *, error: str | None = None, client_id: str = "") -> Template:
    return Template(
        "measurement/signin.html",
        status_code=status,
        context={"error": error, "client_id": client_id},
    )


class CompanyPages(Controller):
    """A company's own pages: sign in with the client id and secret, see the dashboard."""

    include_in_schema = False  # pages for people, not the machine API

    path = "/company"
    dependencies = {"company": Provide(provide_signed_in_company, sync_to_thread=True)}

    @get("/signin", sync_to_thread=False)
    def signin_form(self, company: MaybeCompany) -> Response[Any]:
        """The company sign-in form (straight to the dashboard when already signed in)."""
        if company is not None:
            return Redirect(path=DASHBOARD, status_code=303)
        return _signin_page()

    @post("/signin", status_code=200, sync_to_thread=True)
    def signin(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """Check the client id and secret (ten tries a minute per address and per company)."""
        client_id = form_text(data, "client_id").strip()
        address = request.client.host if request.client else "unknown"
        try:
            runtime.rate_limits.company_signins.hit(
                db_session, f"address:{address}", "sign-in attempts"
            )
            runtime.rate_limits.company_signins.hit(
                db_session, f"client:{client_id}", "sign-in attempts"
            )
        except TooManyRequests as exc:
            response = _signin_page(
                429, client_id=client_id, error=_("Too many attempts. Try again in a minute.")
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        client = sign_in.authenticate(
            db_session,
            clock=runtime.clock,
            client_id=client_id,
            secret=form_text(data, "client_secret"),
        )
        if client is None:
            return _signin_page(
                401,
                client_id=client_id,
                error=_("That client id and secret do not match an approved company."),
            )
        token = sign_in.start_session(
            db_session,
            clock=runtime.clock,
            client=client,
            max_age=runtime.settings.session_max_age_seconds,
            replacing=company_token(request, runtime),
        )
        response = Redirect(path=DASHBOARD, status_code=303)
        response.set_cookie(
            key=company_cookie_name(runtime),
            value=token,
            path="/",
            httponly=True,
            secure=runtime.settings.secure_cookies,
            samesite="lax",
            max_age=runtime.settings.session_max_age_seconds,
        )
        return response

    @post("/signout", status_code=303, sync_to_thread=True)
    def signout(
        self, request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        """End the company's session and forget the cookie."""
        token = company_token(request, runtime)
        if token:
            sign_in.end_session(db_session, token=token)
        response = Redirect(path="/company/signin", status_code=303)
        response.delete_cookie(company_cookie_name(runtime), path="/")
        return response

    @get("/dashboard", sync_to_thread=True)
    def dashboard(
        self, company: MaybeCompany, db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        """The figures as tables and charts (signing in first when needed)."""
        if company is None:
            return Redirect(path="/company/signin", status_code=303)
        figures = _figures(company.client, db_session, runtime)
        return Template(
            "measurement/dashboard.html",
            context={
                "account": company,
                "company": company.client,
                "figures": figures,
                "charts": dashboard_charts(figures),
            },
        )
