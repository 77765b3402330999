"""The load of tests/load while the server is SIGKILLed and restarted, and while PostgreSQL
restarts: no acknowledged write is lost, no revocation is undone, no message goes out twice,
no code or refresh token is spent twice, and the vault serves again without manual repair
(checklist R1, R2, R5, R6)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from cmr_vault.settings import Settings
from tests.load.harness import (
    FAULT_GRACE_SECONDS,
    SCOPES,
    Customer,
    Journal,
    Report,
    VaultProcess,
    check,
    retry_unknown_pushes,
    run_load,
)
from tests.oauth.flows import REDIRECT_URI, get_code

# 15 s in the suite; checklist R1 asks for 5 minutes: CMR_VAULT_FAULT_SECONDS=300.
SECONDS = float(os.environ.get("CMR_VAULT_FAULT_SECONDS", "15"))
# The suite's 300 s per test would cut a 5-minute run short: allow the run, the grace a slow
# machine may need to finish its faults, set-up and the check.
pytestmark = pytest.mark.timeout(max(300, SECONDS + FAULT_GRACE_SECONDS) + 300)


def _finish(vault: VaultProcess, journal: Journal, settings: Settings, tmp_path: Path,
            title: str) -> Report:
    """Make sure the vault is up, settle unknown pushes, stop it and run the checker."""
    try:
        vault.wait_healthy(timeout=60)
    except RuntimeError:
        vault.start()
    retried = retry_unknown_pushes(vault.base_url, journal)
    vault.stop()
    report = check(settings.database_url, journal, vault.env)
    print(f"\n{title} ({vault.workers} worker(s), {retried} unknown pushes retried):\n"
          f"{report.lines()}")
    (tmp_path / "fault-report.json").write_text(report.lines())
    return report


def _assert_safe(report: Report) -> None:
    assert report.lost == []
    assert report.acknowledged == report.found
    assert report.duplicates == 0 and report.delivered_twice == 0
    assert report.refused_delivered == 0
    assert report.audit_verified
    assert 500 not in report.server_errors  # a database that is away is a 503 with Retry-After


def test_sigkill_and_restart_lose_no_acknowledged_write(
    live: tuple[VaultProcess, list[Customer]], settings: Settings, tmp_path: Path
) -> None:
    vault, customers = live
    journal = Journal()
    kills: list[int] = []

    def nemesis(stop: threading.Event) -> None:
        rng = random.Random(11)
        while not stop.wait(rng.uniform(2.0, 4.0)):
            vault.kill()
            kills.append(1)
            vault.start()

    run_load(vault.base_url, customers, journal, seconds=SECONDS, company_threads=6,
             nemesis=nemesis, faults_done=lambda: len(kills) >= 2)
    report = _finish(vault, journal, settings, tmp_path, f"SIGKILL x{len(kills)}")

    assert len(kills) >= 2
    assert journal.requests["push ok"] > 0 and journal.requests["read ok"] > 0
    _assert_safe(report)


def test_a_revocation_acknowledged_before_a_crash_stays_revoked(
    live: tuple[VaultProcess, list[Customer]]
) -> None:
    vault, customers = live
    customer = customers[0]
    response = customer.browser.submit(f"/connections/{customer.grant_id}/revoke", {},
                                       page="/connections")
    assert response.status_code == 303

    vault.kill()
    vault.start()

    read = httpx.get(f"{vault.base_url}/api/v1/subjects/{customer.subject}/profile",
                     params={"fields": "email", "purpose": "Send your order receipts"},
                     headers={"Authorization": f"Bearer {customer.token}"})
    assert read.status_code == 401
    grants = httpx.get(f"{vault.base_url}/api/v1/grants",
                       auth=(customer.company.client_id, str(customer.company.secret))).json()
    assert {g["status"] for g in grants["grants"] if g["grant_id"] == customer.grant_id} == {
        "revoked"}


def _restart_postgres() -> None:
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True,
                             check=True).stdout.split()[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "-m", "immediate", version,
                    "main", "restart"], check=True, capture_output=True, timeout=60)


@pytest.mark.serial  # it restarts the PostgreSQL server every other test is using
def test_a_postgresql_restart_under_load_loses_nothing_and_the_vault_recovers(
    live: tuple[VaultProcess, list[Customer]], settings: Settings, tmp_path: Path,
    database_url: str, db_session: Session,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("restarting the database server applies to PostgreSQL")
    if shutil.which("pg_ctlcluster") is None:
        pytest.skip("pg_ctlcluster is not available to restart PostgreSQL")
    vault, customers = live
    journal = Journal()
    restarts: list[int] = []

    def nemesis(stop: threading.Event) -> None:
        while not stop.wait(5.0):
            _restart_postgres()
            restarts.append(1)

    run_load(vault.base_url, customers, journal, seconds=SECONDS, company_threads=6,
             nemesis=nemesis, faults_done=lambda: len(restarts) >= 1)
    db_session.invalidate()  # its connection died with the server it was made to
    report = _finish(vault, journal, settings, tmp_path, f"PostgreSQL restart x{len(restarts)}")

    assert len(restarts) >= 1
    _assert_safe(report)


def _race(vault: VaultProcess, attempt: Callable[[], int | None], kill_after: float) -> list[
        int | None]:
    """Eight concurrent attempts with a SIGKILL in the middle, then four more after restart."""
    answers: list[int | None] = []
    lock = threading.Lock()

    def one() -> None:
        status = attempt()
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(kill_after)
    vault.kill()
    for thread in threads:
        thread.join(timeout=30)
    vault.start()
    answers += [attempt() for _ in range(4)]
    return answers


def test_a_code_and_a_refresh_token_are_spent_at_most_once_across_a_crash(
    live: tuple[VaultProcess, list[Customer]]
) -> None:
    vault, customers = live
    customer = customers[1]
    code, verifier = get_code(customer.browser, customer.company, scopes=SCOPES,
                              scope=" ".join(SCOPES))

    def redeem_code() -> int | None:
        try:
            return httpx.post(f"{vault.base_url}/oauth/token", timeout=10, data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": REDIRECT_URI}, headers=customer.company.auth()).status_code
        except httpx.HTTPError:
            return None

    def refresh_once() -> int | None:
        try:
            return httpx.post(f"{vault.base_url}/oauth/token", timeout=10, data={
                "grant_type": "refresh_token", "refresh_token": customer.refresh_token},
                headers=customer.company.auth()).status_code
        except httpx.HTTPError:
            return None

    codes = _race(vault, redeem_code, kill_after=0.1)
    refreshes = _race(vault, refresh_once, kill_after=0.1)

    print(f"\ncode redemptions: {codes}\nrefreshes: {refreshes}")
    assert codes.count(200) <= 1
    assert refreshes.count(200) <= 1
    assert all(status in (200, 400, 401, None) for status in codes + refreshes)
