"""On PostgreSQL, deliveries and campaigns run as procrastinate jobs in `cmr-vault worker`."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from cmr_vault import cli
from cmr_vault.marketing import jobs
from cmr_vault.marketing.models import Message
from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.marketing.conftest import SALES, preferences_form
from tests.oauth.flows import Company

# procrastinate and the CLI worker read the process clock: so must the tokens these tests get.
pytestmark = pytest.mark.real_clock


@pytest.fixture(autouse=True)
def _postgres_only(mail_runtime: Runtime) -> None:
    if not mail_runtime.settings.uses_job_engine:
        pytest.skip("the job engine runs on PostgreSQL; SQLite uses the in-process worker")


def _push(client: TestClient[Litestar], connected: dict[str, Any], key: str) -> Any:
    return client.post("/api/v1/pushes", headers={"Authorization": f"Bearer {connected['token']}"},
                       json={"subject": connected["subject"], "channel": "inbox",
                             "topic": "sales", "purpose": SALES, "title": "Winter sale",
                             "body": "Half price.", "idempotency_key": key})


def test_a_push_is_a_job_that_a_worker_delivers(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, db_session: Session,
) -> None:
    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))
    assert _push(mail_client, connected, "j1").status_code == 202
    queued = db_session.exec(text(  # type: ignore[call-overload]
        "SELECT task_name, status FROM procrastinate_jobs")).all()
    assert ("cmr.deliver", "todo") in [tuple(row) for row in queued]
    jobs.run_worker(mail_runtime, wait=False)
    db_session.rollback()
    assert db_session.exec(select(Message)).one().status == "delivered"
    assert "Winter sale" in customer_browser.client.get("/inbox").text


def test_a_campaign_is_worked_off_by_the_worker_command(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, cli_env: None, db_session: Session,
) -> None:
    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))
    started = mail_client.post("/api/v1/campaigns", headers=shop.auth(), json={
        "subjects": [connected["subject"]], "channel": "inbox", "topic": "sales",
        "purpose": SALES, "title": "Winter sale", "body": "Half price."})
    assert started.status_code == 202
    result = CliRunner().invoke(cli.main, ["worker", "--until-idle"])
    assert result.exit_code == 0, result.output
    progress = mail_client.get(f"/api/v1/campaigns/{started.json()['campaign_id']}",
                               headers=shop.auth()).json()
    assert progress["status"] == "done"
    db_session.rollback()
    assert db_session.exec(select(Message)).one().status == "delivered"
