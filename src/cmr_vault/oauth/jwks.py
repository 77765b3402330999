"""The id_token signing keys: derived from the keyring, published as a JWK set, rotated.

Each generation in the keyring (`crypto.keyring.SigningGeneration`) yields one key per
algorithm: EdDSA (Ed25519, RFC 8037) and ES256 (P-256) derived from its seed, and RS256 when
the generation holds an RSA key (`cmr-vault init` and `cmr-vault keys rotate-id-token` make one;
OpenID Connect Discovery §3 wants RS256 offered, and many client libraries assume it).

The newest generation signs. Rotation retires the previous one, which stays in the published
set until every id_token it signed has expired (`ID_TOKEN_LIFETIME` after its retirement), so a
company verifying a token signed a moment before the rotation still finds its key.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey, OKPKey, RSAKey

from cmr_vault.crypto.keyring import Keyring, SigningGeneration, new_signing_generation

ID_TOKEN_LIFETIME = timedelta(minutes=10)
# The order is the preference when a company registered none: RS256 is OpenID Connect's default
# (Registration §2, id_token_signed_response_alg), ES256 where a generation has no RSA key.
ALGORITHMS = ("RS256", "ES256", "EdDSA")
Key = ECKey | OKPKey | RSAKey
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class NoSigningKey(RuntimeError):
    """The keyring holds no id_token key for this algorithm (run `keys rotate-id-token`)."""


def _derived(seed: bytes, purpose: str, length: int) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=None,
        info=f"cmr-vault id_token {purpose}".encode(),
    ).derive(seed)


@lru_cache(maxsize=64)
def _private_key(seed: bytes, rsa_pem: bytes | None, alg: str) -> Key:
    if alg == "EdDSA":
        return OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(_derived(seed, alg, 32)))
    if alg == "ES256":
        # 48 bytes reduced modulo the group order: a uniform scalar (FIPS 186-5 A.2.1).
        scalar = int.from_bytes(_derived(seed, alg, 48), "big") % (_P256_ORDER - 1) + 1
        return ECKey.import_key(ec.derive_private_key(scalar, ec.SECP256R1()))
    if alg == "RS256" and rsa_pem is not None:
        return RSAKey.import_key(rsa_pem)
    raise NoSigningKey(f"no {alg} id_token key in this generation")


def algorithms_of(generation: SigningGeneration) -> list[str]:
    """What a generation can sign with."""
    return [a for a in ALGORITHMS if a != "RS256" or generation.rsa_pem is not None]


def key_id(generation: SigningGeneration, alg: str) -> str:
    """One `kid` per key: the generation's id and the algorithm."""
    return f"{generation.kid}-{alg.lower()}"


def active(keyring: Keyring) -> SigningGeneration:
    """The generation that signs now: the newest."""
    if not keyring.id_token_keys:
        raise NoSigningKey(
            "the keyring has no id_token keys: run `cmr-vault keys rotate-id-token` once"
        )
    return keyring.id_token_keys[-1]


def supported_algorithms(keyring: Keyring) -> list[str]:
    """The algorithms the vault signs id_tokens with now (for discovery)."""
    return algorithms_of(active(keyring)) if keyring.id_token_keys else []


def default_algorithm(keyring: Keyring) -> str:
    """The algorithm for a company that registered none."""
    return algorithms_of(active(keyring))[0]


def signing_key(keyring: Keyring, alg: str) -> tuple[str, Key]:
    """(kid, private key) of the active generation for `alg`."""
    generation = active(keyring)
    if alg not in algorithms_of(generation):
        raise NoSigningKey(f"the active id_token key generation has no {alg} key")
    return key_id(generation, alg), _private_key(generation.seed, generation.rsa_pem, alg)


def is_published(generation: SigningGeneration, now: datetime) -> bool:
    """Live, or retired so recently that a token it signed may still be valid."""
    return generation.retired_at is None or generation.retired_at + ID_TOKEN_LIFETIME > now


def public_keys(keyring: Keyring, now: datetime) -> list[dict[str, Any]]:
    """Every published public key as a JWK, newest generation first."""
    published = []
    for generation in reversed(keyring.id_token_keys):
        if not is_published(generation, now):
            continue
        for alg in algorithms_of(generation):
            key = _private_key(generation.seed, generation.rsa_pem, alg)
            published.append(
                {
                    **key.as_dict(private=False),
                    "kid": key_id(generation, alg),
                    "alg": alg,
                    "use": "sig",
                }
            )
    return published


def new_rsa_key() -> bytes:
    """A 2048-bit RSA key (PKCS #8 PEM) for RS256."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rotated(keyring: Keyring, now: datetime, *, with_rsa: bool = True) -> Keyring:
    """A new signing generation; the old one retires now and is dropped once unpublished."""
    kept = tuple(replace(g, retired_at=g.retired_at or now) for g in keyring.id_token_keys)
    fresh = new_signing_generation(new_rsa_key() if with_rsa else None)
    return keyring.with_id_token_keys(
        (*(g for g in kept if is_published(g, now)), replace(fresh, created_at=now))
    )
