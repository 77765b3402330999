"""The shipped policy set, and a scratch copy tests may break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.loader import load_policy_set

SHIPPED = Path(__file__).parents[2] / "policies"


@pytest.fixture(scope="session")
def shipped_dir() -> Path:
    """The policies/ folder the project ships."""
    return SHIPPED


@pytest.fixture(scope="session")
def shipped() -> PolicySet:
    return load_policy_set(SHIPPED)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of the shipped policies and their cases, free to edit."""
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED, target)
    return target
