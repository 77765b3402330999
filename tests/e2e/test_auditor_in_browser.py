"""An auditor, created by the operator, reviews and verifies the log in a real browser."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.browser
PASSWORD = "an auditor's long password"


def _cli(live_vault: str, data_dir: str, *args: str) -> str:
    env = {**os.environ, "CMR_VAULT_DATA_DIR": data_dir, "CMR_VAULT_BASE_URL": live_vault}
    return subprocess.run([sys.executable, "-m", "cmr_vault", *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def test_auditor_searches_verifies_and_reads_a_report(live_vault: str, live_data_dir: str,
                                                      page) -> None:
    email = f"auditor-{secrets.token_hex(3)}@example.org"
    _cli(live_vault, live_data_dir, "auditors", "add", email, "--password", PASSWORD)
    page.goto(f"{live_vault}/signin")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{live_vault}/auditor")
    assert "auditor.created" in page.content()

    page.fill("input[name=action]", "auditor.")
    page.click("button:has-text('Search')")
    assert "auditor.created" in page.content()

    page.click("nav.menu-wide >> text=Integrity")
    page.click("button:has-text('Verify the whole log now')")
    page.wait_for_url(f"{live_vault}/auditor/integrity?checked=true")
    assert "intact" in page.content()

    page.click("nav.menu-wide >> text=Reports")
    assert "Company reports" in page.content()
