"""A verifier the project did not write checks the log: Go's golang.org/x/mod/sumdb `note` and
`tlog` packages (Debian's golang-golang-x-mod-dev) read the vault's cosigned checkpoint, every
tile and entry bundle, and a consent receipt's tlog-proof, as any C2SP tiles client would.

The test mirrors what the vault serves into a directory laid out like its URLs (tiles are
static files by design), then runs tests/audit/outside_verifier/main.go over it, offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.service import AuditEvent
from cmr_vault.audit.signer import sign_once
from cmr_vault.audit.tiles import encode_index
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.audit.witnessing import RunningWitness, log_keyring, witness, witnessed_settings
from tests.auditor.conftest import auditor_browser
from tests.conftest import ClockUnderTest
from tests.factories import Browser
from tests.oauth.conftest import browser, company, customer
from tests.oauth.flows import Company, get_code

__all__ = [
    "auditor_browser",
    "browser",
    "company",
    "customer",
    "log_keyring",
    "witness",
    "witnessed_settings",
]

GO_SOURCE = Path(__file__).parent / "outside_verifier"
GO_PATH = Path("/usr/share/gocode")
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
def settings(witnessed_settings: Settings) -> Settings:
    return witnessed_settings


@pytest.fixture(scope="session")
def outside_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go verifier, built offline against Debian's golang.org/x/mod."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("`go` is not installed (Debian: golang-go)")
    if not (GO_PATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.skip("golang.org/x/mod is not installed (Debian: golang-golang-x-mod-dev)")
    out = tmp_path_factory.mktemp("go") / "outside_verifier"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GO_PATH),
        "GOFLAGS": "",
        "GOCACHE": str(out.parent / "cache"),
        "GOPROXY": "off",
    }
    subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=GO_SOURCE, env=env, check=True, timeout=600
    )
    return out


def _mirror(client: TestClient[Litestar], auditor: Browser, directory: Path) -> int:
    """Fetch the checkpoint, every tile and every entry bundle it needs; return its size."""
    checkpoint = client.get("/audit/checkpoint")
    assert checkpoint.status_code == 200
    (directory / "checkpoint").write_text(checkpoint.text, encoding="utf-8")
    size = int(checkpoint.text.split("\n")[1])

    def fetch(path: str, via: TestClient[Litestar], *, full: bool) -> None:
        answer = via.get(f"/audit/{path}")
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == "application/octet-stream"
        assert (answer.headers["cache-control"] == IMMUTABLE) is full
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(answer.content)

    level = 0
    while 256**level <= size:
        for n in range(size // 256 ** (level + 1)):
            fetch(f"tile/{level}/{encode_index(n)}", client, full=True)
            if level == 0:
                fetch(f"tile/entries/{encode_index(n)}", auditor.client, full=True)
        width = size // 256**level % 256
        if width:
            n = size // 256 ** (level + 1)
            fetch(f"tile/{level}/{encode_index(n)}.p/{width}", client, full=False)
            if level == 0:
                fetch(f"tile/entries/{encode_index(n)}.p/{width}", auditor.client, full=False)
        level += 1
    return size


def _receipt(browser: Browser) -> dict[str, str]:
    page = browser.client.get("/receipts").text
    receipt_id = re.findall(r'href="/receipts/([^".]+)\.json"', page)[0]
    return dict(browser.client.get(f"/receipts/{receipt_id}.json").json())


def test_go_sumdb_verifies_the_cosigned_checkpoint_tiles_entries_and_a_receipt(
    client: TestClient[Litestar],
    browser: Browser,
    company: Company,
    auditor_browser: Browser,
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
    witness: RunningWitness,
    outside_verifier: Path,
    tmp_path: Path,
) -> None:
    get_code(browser, company, scopes=["profile.email:read"])
    audit_service.record_many(
        db_session,
        clock=clock,
        events=[
            AuditEvent(
                actor="company:acme",
                action="profile.read",
                subject=f"s{i % 7}",
                resource="profile.email",
                purpose="newsletter",
                outcome="allow",
                details={"n": i},
            )
            for i in range(600)
        ],
    )
    db_session.commit()
    assert sign_once(runtime) is not None
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    size = _mirror(client, auditor_browser, mirror)
    assert size > 600
    receipt = _receipt(browser)
    proof_file = tmp_path / "receipt.tlog-proof"
    proof_file.write_text(receipt["tlog_proof"], encoding="utf-8")
    leaf = receipt["claims"]["audit"]["leafHash"]  # type: ignore[index]
    arguments = [
        str(outside_verifier),
        str(mirror),
        witness.log_verifier_key,
        witness.verifier_key,
        str(proof_file),
        leaf,
    ]

    checked = subprocess.run(arguments, capture_output=True, text=True, timeout=120)

    assert checked.returncode == 0, checked.stderr
    assert f"tiles ok: {size} entries" in checked.stdout
    assert "receipt ok" in checked.stdout

    tile = mirror / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[100] ^= 1
    tile.write_bytes(bytes(data))
    tampered = subprocess.run(arguments, capture_output=True, text=True, timeout=120)
    assert tampered.returncode == 1
    assert "FAIL: entry 0 has no valid inclusion proof" in tampered.stderr


def test_entry_bundles_are_for_auditors_only(
    client: TestClient[Litestar],
    db_session: Session,
    clock: ClockUnderTest,
) -> None:
    audit_service.record_many(
        db_session,
        clock=clock,
        events=[AuditEvent(actor="company:acme", action="profile.read") for _ in range(3)],
    )
    db_session.commit()

    assert client.get("/audit/tile/0/000.p/3").status_code == 200
    assert client.get("/audit/tile/entries/000.p/3").status_code in (401, 403)
