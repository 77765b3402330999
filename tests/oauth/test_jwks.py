"""id_token keys: the same in every worker, rotated without breaking tokens already issued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cmr_vault.crypto.keyring import Keyring
from cmr_vault.oauth import jwks

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_every_process_reading_the_keyring_publishes_the_same_keys() -> None:
    keyring = Keyring.generate()
    reread = Keyring.from_json(keyring.to_json())
    assert jwks.public_keys(keyring, NOW) == jwks.public_keys(reread, NOW)
    assert all("d" not in key for key in jwks.public_keys(keyring, NOW))


def test_a_rotation_keeps_the_old_keys_only_as_long_as_their_tokens_live() -> None:
    first = Keyring.generate()
    second = jwks.rotated(first, NOW, with_rsa=False)
    old = {jwks.key_id(first.id_token_keys[0], alg) for alg in ("ES256", "EdDSA")}

    assert old <= {k["kid"] for k in jwks.public_keys(second, NOW)}
    assert jwks.signing_key(second, "ES256")[0] not in old
    later = NOW + jwks.ID_TOKEN_LIFETIME
    assert not old & {k["kid"] for k in jwks.public_keys(second, later)}
    third = jwks.rotated(second, later + timedelta(seconds=1), with_rsa=False)
    assert first.id_token_keys[0].kid not in {g.kid for g in third.id_token_keys}
