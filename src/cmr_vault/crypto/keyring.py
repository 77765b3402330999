"""The keyring file: every secret the vault holds outside its database.

Created by `cmr-vault init` with mode 0600. It holds the ring of key-encryption keys (KEKs; one
active, older ones kept for unwrapping until rotation has re-wrapped every data key), the
blind-index key, the pseudonym key, the CSRF secret, the audit signing key and the generations of
OpenID Connect signing keys (`oauth.jwks` derives and publishes them). Keeping them out of the
database means a stolen database copy alone reveals nothing, not even a way to forge id_tokens.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cmr_vault.db.engine import private_directory

KEY_BYTES = 32


class KeyringError(RuntimeError):
    """The keyring file is missing, unreadable or malformed."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"keyring: {what} is not valid base64") from exc


@dataclass(frozen=True, repr=False)
class SigningGeneration:
    """One generation of id_token signing keys: the newest signs, older ones are only published.

    The Ed25519 and P-256 keys are derived from `seed`; RSA keys cannot be derived cheaply, so
    an RSA key is stored whole (`rsa_pem`, PKCS #8) when the generation has one.
    """

    kid: str
    created_at: datetime
    seed: bytes
    rsa_pem: bytes | None = None
    retired_at: datetime | None = None

    def to_json(self) -> dict[str, str | None]:
        """Serialise for the keyring file."""
        return {"kid": self.kid, "created_at": self.created_at.isoformat(),
                "seed": _b64(self.seed), "rsa_pem": _b64(self.rsa_pem) if self.rsa_pem else None,
                "retired_at": self.retired_at.isoformat() if self.retired_at else None}

    @classmethod
    def from_json(cls, raw: dict[str, str | None]) -> SigningGeneration:
        """Parse one generation of the keyring file."""
        rsa_pem, retired = raw.get("rsa_pem"), raw.get("retired_at")
        return cls(kid=str(raw["kid"]), created_at=datetime.fromisoformat(str(raw["created_at"])),
                   seed=_unb64(str(raw["seed"]), "id_token key seed"),
                   rsa_pem=_unb64(rsa_pem, "id_token RSA key") if rsa_pem else None,
                   retired_at=datetime.fromisoformat(retired) if retired else None)


def new_signing_generation(rsa_pem: bytes | None = None) -> SigningGeneration:
    """A fresh generation of id_token keys from the OS CSPRNG."""
    return SigningGeneration(kid=f"oidc-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}",
                             created_at=datetime.now(UTC), seed=secrets.token_bytes(KEY_BYTES),
                             rsa_pem=rsa_pem)


def new_kek_id() -> str:
    """A sortable, unique KEK identifier."""
    return f"kek-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True, repr=False)
class Keyring:
    """All secrets from the keyring file. `repr` never shows key material."""

    active_kek_id: str
    keks: dict[str, bytes]
    index_key: bytes
    pseudonym_key: bytes
    csrf_secret: bytes
    signing_key: bytes
    retired_kek_ids: tuple[str, ...] = field(default=())
    id_token_keys: tuple[SigningGeneration, ...] = field(default=())

    def __repr__(self) -> str:
        return f"Keyring(active_kek_id={self.active_kek_id!r}, keks=[{len(self.keks)} redacted])"

    @classmethod
    def generate(cls) -> Keyring:
        """A fresh keyring with random keys from the OS CSPRNG."""
        kek_id = new_kek_id()
        return cls(
            active_kek_id=kek_id,
            keks={kek_id: secrets.token_bytes(KEY_BYTES)},
            index_key=secrets.token_bytes(KEY_BYTES),
            pseudonym_key=secrets.token_bytes(KEY_BYTES),
            csrf_secret=secrets.token_bytes(KEY_BYTES),
            signing_key=secrets.token_bytes(KEY_BYTES),
            id_token_keys=(new_signing_generation(),),
        )

    def with_id_token_keys(self, generations: tuple[SigningGeneration, ...]) -> Keyring:
        """The same keyring with these id_token key generations (the last one signs)."""
        return replace(self, id_token_keys=generations)

    def with_new_kek(self) -> Keyring:
        """Add a new active KEK; the old ones stay for unwrapping until re-wrap is done."""
        kek_id = new_kek_id()
        return replace(
            self, active_kek_id=kek_id, keks={**self.keks, kek_id: secrets.token_bytes(KEY_BYTES)}
        )

    def retiring(self, kek_ids: set[str]) -> Keyring:
        """Drop KEKs that no longer wrap any data key, remembering their ids."""
        kept = {k: v for k, v in self.keks.items() if k not in kek_ids or k == self.active_kek_id}
        return replace(
            self,
            keks=kept,
            retired_kek_ids=tuple(sorted({*self.retired_kek_ids, *(kek_ids - kept.keys())})),
        )

    def to_json(self) -> str:
        """Serialise for the keyring file."""
        return json.dumps(
            {
                "format": 1,
                "kek": {
                    "active": self.active_kek_id,
                    "keys": {k: _b64(v) for k, v in self.keks.items()},
                    "retired": list(self.retired_kek_ids),
                },
                "index_key": _b64(self.index_key),
                "pseudonym_key": _b64(self.pseudonym_key),
                "csrf_secret": _b64(self.csrf_secret),
                "signing_key": _b64(self.signing_key),
                "id_token_keys": [g.to_json() for g in self.id_token_keys],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        """Parse the keyring file, naming what is wrong."""
        try:
            raw = json.loads(text)
            kek = raw["kek"]
            keks = {k: _unb64(v, f"kek {k}") for k, v in kek["keys"].items()}
            ring = cls(
                active_kek_id=kek["active"],
                keks=keks,
                index_key=_unb64(raw["index_key"], "index_key"),
                pseudonym_key=_unb64(raw["pseudonym_key"], "pseudonym_key"),
                csrf_secret=_unb64(raw["csrf_secret"], "csrf_secret"),
                signing_key=_unb64(raw["signing_key"], "signing_key"),
                retired_kek_ids=tuple(kek.get("retired", ())),
                id_token_keys=tuple(SigningGeneration.from_json(g)
                                    for g in raw.get("id_token_keys", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyringError(f"keyring: malformed file ({exc})") from exc
        if ring.active_kek_id not in ring.keks:
            raise KeyringError(f"keyring: active KEK {ring.active_kek_id!r} has no key")
        return ring


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Write atomically with mode 0600, so a crash never leaves a half-written keyring."""
    private_directory(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(keyring.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_keyring(path: Path) -> Keyring:
    """Read the keyring file, refusing one that others can read."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except OSError as exc:
        raise KeyringError(f"keyring: cannot read {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise KeyringError(f"keyring: {path} has mode {mode:o}; it must be 0600")
    return Keyring.from_json(text)
