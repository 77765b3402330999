"""Many companies reading and pushing while customers change consents: nothing acknowledged
is lost, nothing refused is delivered, no answer is a 5xx, and the audit log verifies."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from cmr_vault.settings import Settings
from tests.load.harness import Customer, Journal, VaultProcess, check, run_load

# 10 s in the suite; a soak (checklist R9 asks for 30 minutes): CMR_VAULT_LOAD_SECONDS=1800.
SECONDS = float(os.environ.get("CMR_VAULT_LOAD_SECONDS", "10"))
pytestmark = pytest.mark.timeout(max(300, SECONDS + 300))


def test_concurrent_companies_and_customers_lose_no_acknowledged_write(
    live: tuple[VaultProcess, list[Customer]], settings: Settings, tmp_path: Path
) -> None:
    vault, customers = live
    journal = Journal()
    memory: list[float] = []

    def sample_memory(stop: threading.Event) -> None:
        memory.append(vault.rss_mb())
        while not stop.wait(max(1.0, SECONDS / 20)):
            memory.append(vault.rss_mb())

    run_load(vault.base_url, customers, journal, seconds=SECONDS, company_threads=6,
             nemesis=sample_memory)
    vault.stop()

    report = check(settings.database_url, journal, vault.env)
    print(f"\nload ({vault.workers} worker(s), {SECONDS:.0f} s):\n{report.lines()}\n"
          f"server memory (MB, all workers): first {memory[0]}, peak {max(memory)}, "
          f"last {memory[-1]}; every {max(1.0, SECONDS / 20):.0f} s: {memory}")
    (tmp_path / "load-report.json").write_text(report.lines())
    assert journal.requests["read ok"] > 0 and journal.requests["push ok"] > 0
    assert journal.requests["consent ok"] > 0
    assert report.lost == []
    assert report.acknowledged == report.found
    assert report.duplicates == 0 and report.refused_delivered == 0
    assert report.audit_verified
    assert report.server_errors == {}
    assert json.loads(report.lines())["writes_found"] == report.found
