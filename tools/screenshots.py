"""Screenshots of every page, in English and German, at 1280 px and 390 px wide, each checked
with axe-core.

    .venv/bin/python tools/screenshots.py [--out screenshots]

Starts `cmr-vault demo` in a fresh data directory of its own (a customer, a company she is
connected to, an auditor), registers a second company to show the consent screen and the
company pages, then drives Debian's headless Chromium through each page as a visitor, the
customer, the company and the auditor. PNGs land in `<out>/<language>/<width>/<who>-<page>.png`,
with an `index.html` to look at them all. axe-core runs on every page state shot: its
violations by impact are printed at the end and written to `<out>/axe.json`.
Needs the test extras (`pip install -e '.[test]'`, for Playwright and axe-core) and
`apt-get install chromium`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = {1280: 800, 390: 844}
LANGUAGES = ("en", "de")
DEMO_PASSWORD = "vault-demo-2026"  # noqa: S105 (the demo's published password)
VISITOR_PAGES = {
    "home": "/",
    "signin": "/signin",
    "signup": "/signup",
    "company-signin": "/company/signin",
    "forgot-password": "/signin/forgot",
    "not-found": "/no-such-page",
}
CUSTOMER_PAGES = {
    "home": "/",
    "profile": "/profile",
    "connections": "/connections",
    "notices": "/connections/notices",
    "preferences": "/preferences",
    "intents": "/intents",
    "inbox": "/inbox",
    "activity": "/activity",
    "receipts": "/receipts",
    "export": "/export",
    "password": "/account/password",
    "erase": "/erase",
    "not-found": "/no-such-page",
}
COMPANY_PAGES = {
    "dashboard": "/company/dashboard",
}
AUDITOR_PAGES = {
    "log": "/auditor",
    "integrity": "/auditor/integrity",
    "reports": "/auditor/reports",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def demo_vault(data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`cmr-vault demo` on a free loopback port; yields its URL and the environment."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CMR_VAULT_DATA_DIR": str(data_dir), "CMR_VAULT_BASE_URL": base_url}
    for name in ("CMR_VAULT_DATABASE_URL", "CMR_VAULT_KEYSTORE_URL", "CMR_VAULT_KEK"):
        env.pop(name, None)
    log = (data_dir.parent / "demo.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "cmr_vault", "demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the demo vault exited; see {log.name}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the demo vault did not start within 60 s")
            time.sleep(0.3)
        yield base_url, env
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


@dataclass(frozen=True)
class SecondCompany:
    """The company registered for the shots: its consent link and its sign-in."""

    consent: str
    client_id: str
    secret: str


def second_company(env: dict[str, str]) -> SecondCompany:
    """Register a second company; its authorization link (PKCE, S256) and credentials."""
    site = "https://nordlicht.example"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cmr_vault",
            "clients",
            "add",
            "--name",
            "Nordlicht Energie",
            "--homepage",
            site,
            "--privacy-policy",
            f"{site}/privacy",
            "--redirect-uri",
            f"{site}/cb",
            "--scope",
            "profile.given_name:read=Address you by name on your bills",
            "--scope",
            "profile.email:read=Send your monthly statement",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    values = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": values["client_id"],
            "redirect_uri": f"{site}/cb",
            "scope": "profile.given_name:read profile.email:read",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        }
    )
    return SecondCompany(f"/oauth/authorize?{query}", values["client_id"],
                         values["client_secret"])


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/signin")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_load_state()


def company_sign_in(page: Page, base_url: str, company: SecondCompany) -> None:
    page.goto(f"{base_url}/company/signin")
    page.fill("#client_id", company.client_id)
    page.fill("#client_secret", company.secret)
    page.click("form[action='/company/signin'] button[type=submit]")
    page.wait_for_load_state()


@dataclass
class AxeTally:
    """axe-core's violations over every page state shot, by impact, and where."""

    states: int = 0
    by_impact: Counter[str] = field(default_factory=Counter)
    found: list[dict[str, object]] = field(default_factory=list)

    def check(self, page: Page, state: str) -> None:
        if not page.evaluate("typeof window.axe === 'object'"):
            page.evaluate(AXE_SCRIPT)
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        self.states += 1
        for violation in result["violations"]:
            impact = violation.get("impact") or "unknown"
            self.by_impact[impact] += len(violation["nodes"])
            self.found.append({"state": state, "rule": violation["id"], "impact": impact,
                               "nodes": [n["target"] for n in violation["nodes"]][:5]})

    def summary(self) -> str:
        counts = ", ".join(f"{self.by_impact[i]} {i}"
                           for i in ("critical", "serious", "moderate", "minor"))
        return f"axe-core on {self.states} page states: {counts} (elements per impact)"


def shoot(page: Page, base_url: str, path: str, target: Path) -> None:
    page.goto(f"{base_url}{path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)


def shoot_everything(browser: Browser, base_url: str, company: SecondCompany, out: Path,
                     axe: AxeTally) -> list[Path]:
    """Every page for every kind of visitor, language and width, each checked with axe-core."""
    shots: list[Path] = []
    for width, height in WIDTHS.items():
        for language in LANGUAGES:
            folder = out / language / str(width)
            for who, email, pages in (
                ("visitor", None, VISITOR_PAGES),
                ("customer", "demo@example.org", {**CUSTOMER_PAGES, "consent": company.consent}),
                ("company", None, COMPANY_PAGES),
                ("auditor", "auditor@example.org", AUDITOR_PAGES),
            ):
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    locale="de-DE" if language == "de" else "en-GB",
                )
                page = context.new_page()
                if email:
                    sign_in(page, base_url, email)
                elif who == "company":
                    company_sign_in(page, base_url, company)
                page.goto(f"{base_url}/language/{language}?next=/")
                for name, path in pages.items():
                    target = folder / f"{who}-{name}.png"
                    shoot(page, base_url, path, target)
                    axe.check(page, f"{language} {width} px {who} {name}")
                    shots.append(target)
                if width < 600:
                    page.goto(f"{base_url}{next(iter(pages.values()))}")
                    page.click("details.menu-narrow > summary")
                    target = folder / f"{who}-menu-open.png"
                    page.screenshot(path=str(target))
                    axe.check(page, f"{language} {width} px {who} menu open")
                    shots.append(target)
                context.close()
    return shots


def write_index(out: Path, shots: list[Path]) -> Path:
    """A plain page showing every screenshot under its name."""
    rows = "\n".join(
        f"<figure><figcaption>{shot.relative_to(out)}</figcaption>"
        f'<img src="{shot.relative_to(out)}" alt="" loading="lazy" width="320"></figure>'
        for shot in shots
    )
    index = out / "index.html"
    index.write_text(
        "<!doctype html><meta charset=utf-8><title>CMR Vault screenshots</title>"
        "<style>body{font-family:sans-serif;display:flex;flex-wrap:wrap;gap:1rem}"
        "figure{margin:0;width:320px}</style>\n" + rows + "\n",
        encoding="utf-8",
    )
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    out: Path = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="cmr-screenshots-") as scratch:
        data_dir = Path(scratch) / "var"
        with demo_vault(data_dir) as (base_url, env), sync_playwright() as playwright:
            company = second_company(env)
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            axe = AxeTally()
            try:
                shots = shoot_everything(browser, base_url, company, out, axe)
            finally:
                browser.close()
    index = write_index(out, shots)
    (out / "axe.json").write_text(json.dumps(
        {"states": axe.states, "by_impact": axe.by_impact, "violations": axe.found}, indent=2),
        encoding="utf-8")
    print(f"{len(shots)} screenshots in {out} (open {index})")
    print(axe.summary())


if __name__ == "__main__":
    main()
