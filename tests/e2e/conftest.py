"""Browser tests: the real `cmr-vault` command serving on loopback, driven by headless Chromium.

Chromium is Debian's (`apt-get install chromium`); no test tool downloads a browser of its own.
Without it these tests skip with a reason, except on CI, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's Chromium, or a skip (a failure on CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed on CI: .ci/run must apt-get install it")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The live vault's data directory, for CLI commands run beside the server."""
    return str(tmp_path_factory.mktemp("live") / "var")


@pytest.fixture(scope="module")
def live_vault(live_data_dir: str) -> Iterator[str]:
    """`cmr-vault init` then `cmr-vault serve` in a fresh data directory; yields the base URL."""
    data_dir = Path(live_data_dir)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CMR_VAULT_DATA_DIR": str(data_dir), "CMR_VAULT_BASE_URL": base_url}
    for name in ("CMR_VAULT_DATABASE_URL", "CMR_VAULT_KEYSTORE_URL", "CMR_VAULT_KEK"):
        env.pop(name, None)
    command = [sys.executable, "-m", "cmr_vault"]
    subprocess.run([*command, "init"], env=env, check=True, capture_output=True)
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_until_healthy(base_url, server)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def _wait_until_healthy(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90  # a busy machine (CI, several suites) starts slowly
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the vault exited during start-up")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the vault did not become healthy within 90 s")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, tmp_path: Path) -> Iterator[object]:
    """A fresh browser context (own cookies) with downloads allowed."""
    context = browser.new_context(accept_downloads=True)  # type: ignore[attr-defined]
    page = context.new_page()
    yield page
    context.close()


BROWSER_PASSWORD = "a long browser password"


def sign_up(page: object, live_vault: str, prefix: str, *, lands_on: str | None = None) -> str:
    """Create a vault through the sign-up page; returns the new e-mail.

    Without `lands_on` the sign-up page is opened afresh and ends on /profile; with it, the
    page already open (reached from a company's link) is filled and must end on `lands_on`.
    """
    email = f"{prefix}-{secrets.token_hex(3)}@example.org"
    if lands_on is None:
        page.goto(f"{live_vault}/signup")  # type: ignore[attr-defined]
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", BROWSER_PASSWORD)  # type: ignore[attr-defined]
    page.fill("#password_confirm", BROWSER_PASSWORD)  # type: ignore[attr-defined]
    page.click("button:has-text('Create vault')")  # type: ignore[attr-defined]
    target = lands_on or f"{live_vault}/profile"
    page.wait_for_url(lambda url: url == target)  # type: ignore[attr-defined]
    return email


def assert_each_choice_sits_beside_its_words(page: object) -> None:
    """Every checkbox and radio button is on the line of its own label's words, just left of
    them (they once floated across the page, away from what they chose)."""
    boxes = page.locator("label.choice")  # type: ignore[attr-defined]
    assert boxes.count() > 0
    for i in range(boxes.count()):
        choice = boxes.nth(i)
        box = choice.locator("input").bounding_box()
        words = choice.locator("span").first.bounding_box()
        gap = words["x"] - (box["x"] + box["width"])
        assert 0 <= gap <= 16, (choice.inner_text(), gap)
        assert words["y"] <= box["y"] + box["height"] / 2 <= words["y"] + words["height"]


def register_company(live_vault: str, data_dir: str, *, name: str, site: str,
                     scopes: list[str]) -> tuple[str, str]:
    """`cmr-vault clients add` as the operator runs it; returns (client_id, client_secret).

    `scopes` are "scope=purpose" pairs; the redirect URI is `<site>/cb`."""
    env = {**os.environ, "CMR_VAULT_DATA_DIR": data_dir, "CMR_VAULT_BASE_URL": live_vault}
    command = [sys.executable, "-m", "cmr_vault", "clients", "add", "--name", name,
               "--homepage", site, "--privacy-policy", f"{site}/privacy",
               "--redirect-uri", f"{site}/cb"]
    for scope in scopes:
        command += ["--scope", scope]
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    values = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return values["client_id"], values["client_secret"]


def axe_script() -> str:
    """axe-core's script, as shipped inside the axe-playwright-python package (PyPI)."""
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()


def assert_accessible(page: object, state: str = "") -> None:
    """axe-core on the page as it is now: no critical and no serious violation.

    The script goes in through the DevTools protocol (`evaluate`), which the vault's
    Content-Security-Policy (no scripts at all) does not govern.
    """
    page.evaluate(axe_script())  # type: ignore[attr-defined]
    results = page.evaluate(  # type: ignore[attr-defined]
        "axe.run(document, {resultTypes: ['violations']})")
    grave = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in results["violations"] if v["impact"] in ("critical", "serious")
    ]
    where = state or page.url  # type: ignore[attr-defined]
    assert not grave, f"axe on {where}:\n" + "\n".join(grave)


PHONE_WIDTH = 390


def assert_fits_a_phone(page: object) -> None:
    """At 390 px nothing makes the page scroll sideways."""
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= PHONE_WIDTH, f"{page.url} is {width} px wide"  # type: ignore[attr-defined]
