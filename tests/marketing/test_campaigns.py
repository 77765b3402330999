"""Campaigns: a dry run decides every subject and sends nothing; a real run is worked off in
the background with progress and a result per subject."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.marketing.models import Campaign, Message
from cmr_vault.marketing.worker import campaign_pass
from cmr_vault.runtime import Runtime
from tests.factories import Browser
from tests.marketing.conftest import SALES, deliver, preferences_form
from tests.oauth.flows import Company, register_company

CAMPAIGN = {"channel": "inbox", "topic": "sales", "purpose": SALES, "title": "Winter sale",
            "body": "Everything half price."}


def _campaign(client: TestClient[Litestar], shop: Company, subjects: list[str],
              dry_run: bool) -> Any:
    return client.post("/api/v1/campaigns", headers=shop.auth(),
                       json={**CAMPAIGN, "subjects": subjects, "dry_run": dry_run})


def test_a_dry_run_counts_by_outcome_and_reason_and_sends_nothing(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, db_session: Session,
) -> None:
    subjects = [connected["subject"], "unknown-subject"]
    before = _campaign(mail_client, shop, subjects, dry_run=True).json()
    assert (before["send"], before["refuse"]) == (0, 2)
    # Each refusal is counted once, under the first rule that refused it.
    assert before["refused_by_rule"] == {"push.grant-missing": 1, "push.not-opted-in": 1}
    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))
    after = _campaign(mail_client, shop, subjects, dry_run=True).json()
    assert (after["send"], after["refuse"]) == (1, 1)
    assert [r["outcome"] for r in after["results"]] == ["allow", "deny"]
    db_session.rollback()
    assert db_session.exec(select(Message)).all() == []


def test_a_real_run_works_in_the_background_with_progress_and_results(
    mail_client: TestClient[Litestar], connected: dict[str, Any], customer_browser: Browser,
    shop: Company, mail_runtime: Runtime,
) -> None:
    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))
    started = _campaign(mail_client, shop, [connected["subject"], "nobody"], dry_run=False)
    assert started.status_code == 202
    campaign_id = started.json()["campaign_id"]
    assert started.json()["status"] == "queued"
    assert campaign_pass(mail_runtime) == 2
    progress = mail_client.get(f"/api/v1/campaigns/{campaign_id}", headers=shop.auth()).json()
    assert (progress["status"], progress["processed"]) == ("done", 2)
    assert progress["counts"] == {"allow": 1, "deny": 1}
    results = mail_client.get(f"/api/v1/campaigns/{campaign_id}/results",
                              headers=shop.auth()).json()["results"]
    assert [r["outcome"] for r in results] == ["allow", "deny"]
    assert deliver(mail_runtime).delivered == 1
    assert "Winter sale" in customer_browser.client.get("/inbox").text


def test_another_company_cannot_see_the_campaign(
    mail_client: TestClient[Litestar], connected: dict[str, Any], shop: Company,
    db_session: Session, mail_runtime: Runtime,
) -> None:
    other = register_company(db_session, mail_runtime)
    campaign_id = _campaign(mail_client, shop, [connected["subject"]], False).json()[
        "campaign_id"]
    assert mail_client.get(f"/api/v1/campaigns/{campaign_id}",
                           headers=other.auth()).status_code == 404


def test_a_company_over_its_campaign_quota_is_refused_and_others_are_not(
    mail_client: TestClient[Litestar], shop: Company, db_session: Session,
    mail_runtime: Runtime,
) -> None:
    mail_runtime.settings = mail_runtime.settings.model_copy(
        update={"campaign_subjects_per_day": 3, "campaigns_running": 5})
    assert _campaign(mail_client, shop, ["a", "b"], dry_run=False).status_code == 202

    refused = _campaign(mail_client, shop, ["c", "d"], dry_run=False)

    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert "its quota is 3" in refused.json()["detail"]
    other = register_company(db_session, mail_runtime, name="Other Shop")
    assert _campaign(mail_client, other, ["e", "f"], dry_run=False).status_code == 202


def test_too_many_running_campaigns_are_refused_until_one_finishes(
    mail_client: TestClient[Litestar], shop: Company, mail_runtime: Runtime,
) -> None:
    mail_runtime.settings = mail_runtime.settings.model_copy(update={"campaigns_running": 1})
    assert _campaign(mail_client, shop, ["a"], dry_run=False).status_code == 202
    assert _campaign(mail_client, shop, ["b"], dry_run=False).status_code == 429
    while campaign_pass(mail_runtime):
        pass
    assert _campaign(mail_client, shop, ["b"], dry_run=False).status_code == 202


def test_a_dry_run_flag_that_is_not_a_boolean_is_refused_not_read_as_a_real_run(
    mail_client: TestClient[Litestar], shop: Company, db_session: Session,
) -> None:
    response = mail_client.post("/api/v1/campaigns", headers=shop.auth(),
                                json={**CAMPAIGN, "subjects": ["a"], "dry_run": 0})
    assert response.status_code == 400
    db_session.rollback()
    assert db_session.exec(select(Campaign)).all() == []


def test_a_campaign_body_without_valid_credentials_is_refused_before_it_is_read(
    mail_client: TestClient[Litestar], shop: Company,
) -> None:
    """Only an authenticated company may make the vault take in and scan up to 64 MiB."""
    nested = b"[" * 16_000_000
    for credentials in ({}, {**shop.auth(), "Authorization": "Basic bm9ib2R5Om5vdGhpbmc="}):
        response = mail_client.post("/api/v1/campaigns", content=nested,
                                    headers={**credentials, "Content-Type": "application/json"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    deep = mail_client.post("/api/v1/campaigns", content=nested,
                            headers={**shop.auth(), "Content-Type": "application/json"})
    assert deep.status_code == 400
    assert "nests deeper" in deep.json()["detail"]
