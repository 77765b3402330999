"""The vault refuses to start on settings that would break its promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from cmr_vault.app import create_app
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.engine import check_durability, make_engine
from cmr_vault.settings import Settings, UnsafeSettingsError


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_missing_keyring_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(UnsafeSettingsError, match="cmr-vault init"):
        create_app(_settings(tmp_path))


def test_plain_http_on_a_public_host_refuses_to_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path, base_url="http://vault.example.org")
    write_keyring(settings.resolved_key_file, Keyring.generate())
    with pytest.raises(UnsafeSettingsError, match="plain http"):
        create_app(settings)


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("https://vault.example.org", True),
    ],
)
def test_cookies_are_secure_everywhere_but_loopback_http(
    tmp_path: Path, url: str, secure: bool
) -> None:
    assert _settings(tmp_path, base_url=url).secure_cookies is secure


def test_sqlite_without_full_sync_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'weak.db'}")
    with pytest.raises(UnsafeSettingsError, match="synchronous=FULL"):
        check_durability(engine)


def test_vault_sqlite_engine_is_wal_and_full_sync(tmp_path: Path) -> None:
    check_durability(make_engine(f"sqlite:///{tmp_path / 'good.db'}"))


def test_secrets_are_redacted_in_settings_repr(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kek="k1:c2VjcmV0LWtleS1tYXRlcmlhbA==")
    assert "c2VjcmV0" not in repr(settings)
    assert "c2VjcmV0" not in str(settings.model_dump())
