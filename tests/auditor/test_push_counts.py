"""The auditor's company report and the company's own figures count pushes the same way."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.marketing.conftest import (
    SALES,
    connected,
    customer_browser,
    deliver,
    mail_client,
    mail_runtime,
    mailbox,
    preferences_form,
    shop,
)
from tests.oauth.flows import Company

__all__ = ["connected", "customer_browser", "mail_client", "mail_runtime", "mailbox", "shop"]


def test_one_consent_check_and_one_delivered_push_are_one_push_in_the_report_and_the_figures(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime, auditor_browser: Browser,
) -> None:
    mail_runtime.settings = mail_runtime.settings.model_copy(
        update={"k_anonymity_threshold": 1})
    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))
    bearer = {"Authorization": f"Bearer {connected['token']}"}
    push = {"subject": connected["subject"], "channel": "inbox", "topic": "sales",
            "purpose": SALES}
    assert mail_client.post("/api/v1/consent-check", headers=bearer,
                            json=push).json()["allowed"] is True
    assert mail_client.post("/api/v1/pushes", headers=bearer, json={
        **push, "title": "Winter sale", "body": "Half price.", "idempotency_key": "k1",
    }).status_code == 202
    assert deliver(mail_runtime).delivered == 1

    report = auditor_browser.client.get(f"/api/v1/auditor/reports/{shop.client_id}").json()
    figures = mail_client.get("/api/v1/measurement", headers=shop.auth()).json()

    assert report["totals"]["pushes"] == figures["pushes"]["accepted"] == 1
    assert report["totals"]["pushes sent"] == figures["pushes"]["sent"] == 1
    assert report["totals"]["consent checks"] == 1
    assert "pushes allow" not in report["totals"]
