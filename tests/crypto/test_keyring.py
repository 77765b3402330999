"""The keyring file and KEK rotation."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from cmr_vault import cli
from cmr_vault.crypto.keyring import Keyring, KeyringError, read_keyring, write_keyring
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, get_settings
from cmr_vault.vault import service as vault_service
from tests.factories import make_customer


def test_keyring_file_is_private_to_its_owner(tmp_path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    write_keyring(path, Keyring.generate())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_keyring_others_can_read_is_refused(tmp_path) -> None:
    path = tmp_path / "keyring.json"
    write_keyring(path, Keyring.generate())
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="0600"):
        read_keyring(path)


def test_keyring_repr_never_shows_key_material() -> None:
    ring = Keyring.generate()
    text = repr(ring)
    assert ring.keks[ring.active_kek_id].hex() not in text
    assert "redacted" in text


def test_kek_from_settings_is_redacted_in_repr(tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, kek="k1:" + "A" * 44)  # type: ignore[call-arg]
    assert "AAAA" not in repr(settings)


def test_rotation_keeps_every_profile_readable_and_the_old_kek_unused(
    settings: Settings, runtime: Runtime, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = [
        make_customer(db_session, runtime, profile={"given_name": f"Name{i}"}) for i in range(3)
    ]
    old_kek = read_keyring(settings.resolved_key_file).active_kek_id
    monkeypatch.setenv("CMR_VAULT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CMR_VAULT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CMR_VAULT_KEYSTORE_URL", settings.keystore_url)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli.main, ["keys", "rotate"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    ring = read_keyring(settings.resolved_key_file)
    assert ring.active_kek_id != old_kek
    assert old_kek not in ring.keks
    assert set(runtime.data_keys.kek_usage()) == {ring.active_kek_id}
    for i, customer in enumerate(customers):
        profile = vault_service.read_profile(
            db_session, cipher=runtime.cipher, account_id=customer.id
        )
        assert profile.standard["given_name"] == f"Name{i}"
