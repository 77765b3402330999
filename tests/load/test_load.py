"""Many companies reading and pushing while customers change consents: nothing acknowledged
is lost, nothing refused is delivered, and the audit log verifies."""

from __future__ import annotations

import json
from pathlib import Path

from cmr_vault.settings import Settings
from tests.load.harness import Customer, Journal, VaultProcess, check, run_load


def test_concurrent_companies_and_customers_lose_no_acknowledged_write(
    live: tuple[VaultProcess, list[Customer]], settings: Settings, tmp_path: Path
) -> None:
    vault, customers = live
    journal = Journal()

    run_load(vault.base_url, customers, journal, seconds=10, company_threads=6)
    vault.stop()

    report = check(settings.database_url, journal, vault.env)
    print(f"\nload ({vault.workers} worker(s)):\n{report.lines()}")
    (tmp_path / "load-report.json").write_text(report.lines())
    assert journal.requests["read ok"] > 0 and journal.requests["push ok"] > 0
    assert journal.requests["consent ok"] > 0
    assert report.lost == []
    assert report.acknowledged == report.found
    assert report.duplicates == 0 and report.refused_delivered == 0
    assert report.audit_verified
    assert report.server_errors == {}
    assert json.loads(report.lines())["writes_found"] == report.found
