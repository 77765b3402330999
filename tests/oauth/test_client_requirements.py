"""The operator holds a company to PAR and DPoP from the command line (`clients add/update`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmr_vault import cli
from cmr_vault.settings import get_settings

ADD = [
    "clients",
    "add",
    "--name",
    "Strict Shop",
    "--homepage",
    "https://strict.example",
    "--privacy-policy",
    "https://strict.example/privacy",
    "--redirect-uri",
    "https://strict.example/cb",
    "--scope",
    "profile.email:read=Send your order receipts",
]


@pytest.fixture
def fresh_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CMR_VAULT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CMR_VAULT_DATABASE_URL", raising=False)
    monkeypatch.delenv("CMR_VAULT_KEYSTORE_URL", raising=False)
    get_settings.cache_clear()
    assert CliRunner().invoke(cli.main, ["init"]).exit_code == 0
    yield tmp_path / "var"
    get_settings.cache_clear()


def _requires(client_id: str) -> str:
    listing = CliRunner().invoke(cli.main, ["clients", "list"])
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if client_id in line)
    return " ".join(word for word in ("PAR", "DPoP") if re.search(rf"\b{word}\b", row))


def test_a_company_is_registered_held_to_par_and_dpop_and_released_one_at_a_time(
    fresh_vault: Path,
) -> None:
    added = CliRunner().invoke(cli.main, [*ADD, "--require-par", "--require-dpop"])
    assert added.exit_code == 0, added.output
    client_id = re.search(r"client_id: (\S+)", added.output).group(1)  # type: ignore[union-attr]
    assert _requires(client_id) == "PAR DPoP"

    released = CliRunner().invoke(cli.main, ["clients", "update", client_id, "--no-require-par"])
    assert released.exit_code == 0, released.output
    assert _requires(client_id) == "DPoP"


def test_updating_an_unknown_company_fails(fresh_vault: Path) -> None:
    result = CliRunner().invoke(cli.main, ["clients", "update", "c_nobody", "--require-dpop"])
    assert result.exit_code != 0
    assert "No company" in result.output
