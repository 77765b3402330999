"""The company's dashboard and its API: the same suppressed figures, as a page and as JSON.

Both authenticate with the company's client credentials (HTTP Basic; a browser asks for them).
"""

from __future__ import annotations

from typing import TypedDict

from litestar import Controller, get
from litestar.di import Provide
from litestar.response import Template

from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.measurement import service as measurement_service
from cmr_vault.oauth.deps import CompanyClient, provide_company_client
from cmr_vault.web.openapi import COMPANY_CLIENT


def _figures(company: CompanyClient, db_session: DbSession,
             runtime: RuntimeDep) -> measurement_service.Figures:
    return measurement_service.figures_for(
        db_session, client_id=company.client_id, now=runtime.clock.now(),
        threshold=runtime.settings.k_anonymity_threshold)


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
        return {"company": company.client_id,
                **_figures(company, db_session, runtime).document()}

    @get("/company/dashboard", sync_to_thread=True, include_in_schema=False)
    def dashboard(self, company: CompanyClient, db_session: DbSession,
                  runtime: RuntimeDep) -> Template:
        """The same figures with charts."""
        return Template("measurement/dashboard.html", context={
            "company": company, "figures": _figures(company, db_session, runtime)})
