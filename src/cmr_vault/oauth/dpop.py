"""RFC 9449 DPoP: tokens bound to a key the company holds, so a stolen token is useless alone.

A DPoP proof is a small JWS the company signs for every request with its private key; its
header carries the public key. At the token endpoint the vault checks the proof and binds the
tokens it issues to that key's SHA-256 thumbprint (`cnf.jkt`, RFC 7638); the resource API then
accepts a bound access token only as `Authorization: DPoP <token>` with a fresh proof, signed
by the same key, naming the request and carrying the token's hash (`ath`).

Replays are refused through the database: every accepted proof's `jti` is stored (hashed with
the key thumbprint) under a primary key until its `iat` window has passed, so a proof accepted
by one worker is refused by every other. The token endpoint also wants a server nonce (§8):
it is an HMAC of a five-minute window under the vault's pseudonym key, so any worker can issue
and check it without shared state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from cmr_vault.crypto.blind_index import blind_index
from cmr_vault.errors import Unauthenticated
from cmr_vault.oauth.models import DPoPProofSeen, OAuthToken

# Asymmetric algorithms only (§4.3 check 4): never `none` nor an HMAC. EdDSA is left out for
# its RFC 9864 successor Ed25519, which names the curve.
SIGNING_ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "Ed25519")
PROOF_TYPE = "dpop+jwt"
# How old (and how far ahead of our clock) a proof's `iat` may be (§11.1).
MAX_AGE = timedelta(seconds=60)
CLOCK_SKEW = timedelta(seconds=10)
NONCE_PERIOD = 300  # seconds; a nonce is good for this window and the next
MAX_PROOF_LENGTH = 8192
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
_REFUSED_HEADERS = {"crit", "jku", "x5u", "x5c", "kid", "b64"}
THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")


class ProofRefused(Exception):
    """The DPoP proof is not acceptable; the message says why (safe to show the company)."""


class NonceRequired(ProofRefused):
    """The proof lacks the server's current nonce: the company must retry with a fresh one."""


@dataclass(frozen=True)
class CheckedProof:
    """What a valid proof establishes: the key's thumbprint and the proof's own id."""

    jkt: str
    jti: str
    iat: datetime


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def access_token_hash(access_token: str) -> str:
    """The `ath` claim: base64url SHA-256 of the access token (§4.2)."""
    return _b64url(hashlib.sha256(access_token.encode()).digest())


def _nonce_for(key: bytes, window: int) -> str:
    return f"{window}.{blind_index(key, 'dpop-nonce', str(window))[:32]}"


def issue_nonce(key: bytes, now: datetime) -> str:
    """The nonce the token endpoint wants in proofs now (§8): any worker computes the same."""
    return _nonce_for(key, int(now.timestamp()) // NONCE_PERIOD)


def nonce_is_current(key: bytes, nonce: str, now: datetime) -> bool:
    """Whether `nonce` was issued in this window or the one before."""
    window = int(now.timestamp()) // NONCE_PERIOD
    return any(hmac.compare_digest(nonce, _nonce_for(key, w)) for w in (window, window - 1))


def _header_and_claims(proof: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
    if len(proof) > MAX_PROOF_LENGTH:
        raise ProofRefused("The DPoP proof is too long.")
    try:
        compact = jws.extract_compact(proof.encode("ascii"))
        header = dict(compact.headers())
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError):
        raise ProofRefused("The DPoP proof is not a compact JWS with a JSON payload.") from None
    if not isinstance(claims, dict):
        raise ProofRefused("The DPoP proof's payload is not a JSON object.")
    if header.get("typ") != PROOF_TYPE:
        raise ProofRefused("The DPoP proof's typ must be dpop+jwt.")
    if header.get("alg") not in SIGNING_ALGORITHMS:
        raise ProofRefused(f"The DPoP proof's alg must be one of {' '.join(SIGNING_ALGORITHMS)}.")
    if _REFUSED_HEADERS & set(header):
        raise ProofRefused("The DPoP proof's header may carry only typ, alg and jwk.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or jwk.get("kty") not in ("EC", "RSA", "OKP"):
        raise ProofRefused("The DPoP proof's header must carry the public key (jwk).")
    if _PRIVATE_MEMBERS & set(jwk):
        raise ProofRefused("The DPoP proof's jwk holds private key material.")
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError):
        raise ProofRefused("The DPoP proof's jwk is not a valid public key.") from None
    return header, claims, key


def check_proof(
    proof: str,
    *,
    method: str,
    uri: str,
    now: datetime,
    access_token: str | None = None,
    nonce_key: bytes | None = None,
) -> CheckedProof:
    """Check one proof against the request it came with (§4.3), without the replay check.

    `uri` is the request's URL without query or fragment; `access_token` is given at the
    resource API (the proof must carry its hash); `nonce_key` when a server nonce is wanted.
    """
    header, claims, key = _header_and_claims(proof)
    try:
        jws.deserialize_compact(proof, key, algorithms=[header["alg"]])
    except (JoseError, ValueError):
        raise ProofRefused("The DPoP proof's signature does not verify.") from None
    jti, htm, htu, iat = (claims.get(k) for k in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
        raise ProofRefused("The DPoP proof needs a jti of up to 256 characters.")
    if htm != method:
        raise ProofRefused(f"The DPoP proof's htm must be {method}.")
    if not isinstance(htu, str) or htu.split("?")[0].split("#")[0] != uri:
        raise ProofRefused(f"The DPoP proof's htu must be {uri}.")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise ProofRefused("The DPoP proof needs a numeric iat.")
    issued = datetime.fromtimestamp(iat, tz=now.tzinfo)
    if issued < now - MAX_AGE or issued > now + CLOCK_SKEW:
        raise ProofRefused("The DPoP proof's iat is too old or in the future.")
    if access_token is not None and not hmac.compare_digest(
        str(claims.get("ath", "")), access_token_hash(access_token)
    ):
        raise ProofRefused("The DPoP proof's ath does not match the access token.")
    if nonce_key is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce_is_current(nonce_key, nonce, now):
            raise NonceRequired("Use the DPoP-Nonce this server sent.")
    return CheckedProof(jkt=key.thumbprint(), jti=jti, iat=issued)


def remember(session: Session, proof: CheckedProof, now: datetime) -> bool:
    """Record a proof as used; False when it was seen before (by any worker).

    An INSERT that ignores a conflict rather than one that fails, so a replay never aborts
    the request's transaction; the primary key makes the database the single judge.
    """
    session.execute(delete(DPoPProofSeen).where(col(DPoPProofSeen.expires_at) <= now))
    proof_hash = hashlib.sha256(f"{proof.jkt}\x00{proof.jti}".encode()).hexdigest()
    values = {"proof_hash": proof_hash, "expires_at": proof.iat + MAX_AGE + CLOCK_SKEW}
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    inserted = session.execute(
        insert(DPoPProofSeen)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["proof_hash"])
        .returning(col(DPoPProofSeen.proof_hash))
    ).first()
    return inserted is not None


def accept_proof(
    session: Session,
    proofs: list[str],
    *,
    method: str,
    uri: str,
    now: datetime,
    access_token: str | None = None,
    nonce_key: bytes | None = None,
) -> str:
    """Check the one DPoP header of a request and spend its proof; returns the key's jkt."""
    if len(proofs) != 1:
        raise ProofRefused("Send exactly one DPoP header.")
    checked = check_proof(
        proofs[0], method=method, uri=uri, now=now, access_token=access_token, nonce_key=nonce_key
    )
    if not remember(session, checked, now):
        raise ProofRefused("This DPoP proof was already used.")
    return checked.jkt


def header_values(headers: Any, name: str) -> list[str]:
    """Every value of one request header (a repeated DPoP header is refused, §4.3 check 1)."""
    if hasattr(headers, "getall"):
        return list(headers.getall(name, []))
    value = headers.get(name)
    return [value] if value is not None else []


def introspection_claims(row: OAuthToken) -> dict[str, Any]:
    """`cnf.jkt` for a bound token (RFC 9449 §6.2), nothing for a bearer one."""
    return {"cnf": {"jkt": row.dpop_jkt}} if row.dpop_jkt else {}


# -- the token endpoint ---------------------------------------------------------------------


class InvalidDPoPProofError(OAuth2Error):
    """§5.2: the proof sent to the token endpoint is missing or not acceptable."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(OAuth2Error):
    """§8: the proof must carry the nonce sent in the DPoP-Nonce header of this answer."""

    error = "use_dpop_nonce"
    status_code = 400

    def __init__(self, nonce: str) -> None:
        super().__init__("Retry with the DPoP-Nonce this answer carries.")
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("DPoP-Nonce", self.nonce)]


class DPoPTokenBinding:
    """An authlib grant extension: check the DPoP proof before tokens are issued, and note
    the key they will be bound to (`request.dpop_jkt`).

    Runs before the code or refresh token is spent, so a missing nonce costs the company a
    retry, not its code. A refresh token bound to a key is refreshed only with that key.
    """

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check_jkt)
        grant.register_hook("before_create_token_response", self.bind)

    def check_jkt(self, grant: Any, _result: Any) -> None:
        """§10: `dpop_jkt` at /authorize names the key that alone may redeem the code."""
        jkt = grant.request.payload.data.get("dpop_jkt")
        if jkt is not None and not THUMBPRINT.fullmatch(jkt):
            raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint.")

    def bind(self, grant: Any) -> None:
        server, request = grant.server, grant.request
        proofs = header_values(request.headers, "dpop")
        presented = getattr(request, "refresh_token", None) or request.authorization_code
        bound_to = presented.row.dpop_jkt if presented is not None else None
        if not proofs:
            if request.client.row.require_dpop:
                raise InvalidDPoPProofError("This company must bind its tokens: send DPoP.")
            if bound_to:
                raise InvalidDPoPProofError("This grant is bound to a key: send a DPoP proof.")
            return
        now = server.clock.now()
        try:
            jkt = accept_proof(
                server.session,
                proofs,
                method="POST",
                uri=f"{server.issuer}/oauth/token",
                now=now,
                nonce_key=server.pseudonym_key,
            )
        except NonceRequired:
            raise UseDPoPNonceError(issue_nonce(server.pseudonym_key, now)) from None
        except ProofRefused as exc:
            raise InvalidDPoPProofError(str(exc)) from None
        if bound_to and not hmac.compare_digest(bound_to, jkt):
            raise InvalidDPoPProofError("This grant is bound to another DPoP key.")
        request.dpop_jkt = jkt


# -- the resource API -----------------------------------------------------------------------


def _challenge(error: str, description: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": f'DPoP error="{error}", error_description="{description}", '
        f'algs="{" ".join(SIGNING_ALGORITHMS)}"'
    }


def check_presentation(
    session: Session,
    *,
    token: OAuthToken,
    scheme: str,
    proofs: list[str],
    method: str,
    uri: str,
    access_token: str,
    now: datetime,
) -> None:
    """At the resource API: a bound token only with `DPoP` and a proof by its key (§7).

    A bearer token stays a bearer token: sent with the DPoP scheme it is refused too, so a
    company cannot believe its tokens are protected when they are not.
    """
    if token.dpop_jkt is None:
        if scheme.lower() == "dpop":
            raise Unauthenticated(
                "This access token is not DPoP-bound: send it as Bearer.",
                headers=_challenge("invalid_token", "not a DPoP token"),
            )
        return
    if scheme.lower() != "dpop":
        raise Unauthenticated(
            "This access token is bound to a DPoP key: send it as Authorization: DPoP with a "
            "proof.",
            headers=_challenge("invalid_token", "DPoP-bound token sent as Bearer"),
        )
    try:
        jkt = accept_proof(
            session, proofs, method=method, uri=uri, now=now, access_token=access_token
        )
    except ProofRefused as exc:
        raise Unauthenticated(
            str(exc), headers=_challenge("invalid_dpop_proof", "see detail")
        ) from None
    if not hmac.compare_digest(jkt, token.dpop_jkt):
        raise Unauthenticated(
            "The DPoP proof is signed by another key than the token's.",
            headers=_challenge("invalid_dpop_proof", "key mismatch"),
        )
