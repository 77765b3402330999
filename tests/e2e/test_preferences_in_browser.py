"""The preference center in a real browser: a company with marketing access, the customer's
choices saved, and a bad value explained without saving anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import sign_up

pytestmark = pytest.mark.browser
PASSWORD = "a long browser password"
REDIRECT_URI = "https://news.example/cb"


def _register(live_vault: str, data_dir: str) -> str:
    env = {**os.environ, "CMR_VAULT_DATA_DIR": data_dir, "CMR_VAULT_BASE_URL": live_vault}
    out = subprocess.run(
        [sys.executable, "-m", "cmr_vault", "clients", "add", "--name", "Daily News",
         "--homepage", "https://news.example", "--privacy-policy", "https://news.example/p",
         "--redirect-uri", REDIRECT_URI, "--scope", "marketing.inbox=Send you the headlines"],
        env=env, check=True, capture_output=True, text=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)["client_id"]


def test_customer_sets_marketing_preferences(live_vault: str, live_data_dir: str, page) -> None:
    client_id = _register(live_vault, live_data_dir)
    sign_up(page, live_vault, "prefs")

    page.route("https://news.example/**", lambda route: route.fulfill(body="ok"))
    page.goto(f"{live_vault}/oauth/authorize?response_type=code&client_id={client_id}"
              f"&redirect_uri={REDIRECT_URI}&scope=marketing.inbox&state=s"
              "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
              "&code_challenge_method=S256")
    page.check("input[value='marketing.inbox']")
    page.check("input[name='expiry'][value='30d']")
    page.click("button:has-text('Allow')")
    page.wait_for_url("https://news.example/cb**")

    page.goto(f"{live_vault}/preferences")
    assert "Daily News" in page.content()
    key = f"{client_id}:inbox"
    page.check(f"input[name='optin:{key}']")
    page.fill(f"input[name='topics:{key}']", "sports, weather")
    page.fill(f"input[name='cap_day:{key}']", "2")
    page.fill("input[name='cap_week:*:*']", "20")
    page.click("button:has-text('Save preferences')")
    page.wait_for_url(f"{live_vault}/preferences?saved=1**")
    assert page.is_checked(f"input[name='optin:{key}']")
    assert page.input_value(f"input[name='topics:{key}']") == "sports, weather"
    assert page.input_value("input[name='cap_week:*:*']") == "20"

    page.fill(f"input[name='cap_day:{key}']", "lots")
    page.click("button:has-text('Save preferences')")
    assert "nothing was saved" in page.content().lower() or "whole numbers" in page.content()
    page.goto(f"{live_vault}/preferences")
    assert page.input_value(f"input[name='cap_day:{key}']") == "2"
