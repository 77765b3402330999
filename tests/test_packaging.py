"""`pip install .` (not only editable) carries the templates, static files and policies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_policies_and_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    wheel = next(tmp_path.glob("cmr_vault-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cmr_vault/templates/base.html" in names
    assert "cmr_vault/templates/static/vault.css" in names
    assert any(n.startswith("cmr_vault/policies/") for n in names)
    assert any(n.startswith("cmr_vault/db/migrations/versions/0001_") for n in names)
    assert "cmr_vault/locale/de/LC_MESSAGES/base.po" in names
    assert "cmr_vault/templates/_layout.html" in names
