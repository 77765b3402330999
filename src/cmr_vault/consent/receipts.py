"""Consent receipts: what the customer agreed to, signed by the vault and anchored in the log.

A receipt's claims follow the Kantara Consent Receipt 1.1 field names (receipt id, time,
jurisdiction, collection method, controller, policy URL, per purpose: category, consent type,
data categories, termination, third-party disclosure), with the ISO/IEC TS 27560 additions a
record needs (the event, its DPV consent status, the notice version). The vault signs them as a
compact JWS with its Ed25519 log key (`alg: EdDSA`, RFC 8037, which PyJWT, jwcrypto, joserfc
and jose libraries in other languages verify; receipts issued before used the newer RFC 9864
name `Ed25519` and still verify here); the claims name the audit entry recording the same
change by its leaf hash. A downloaded receipt adds a C2SP tlog-proof of that entry: the
inclusion path to a checkpoint the log signed and the configured witnesses cosigned. The log's
verifier key and the witnesses' keys check everything offline: the signature, that the log
holds the change, and that the log everyone else sees through those witnesses is the same.

The customer is named (`piiPrincipalId`) by the company's pairwise subject, the name that company
already knows (`sub`), so two companies comparing their receipts find nothing in common. The
receipt is tied to the log by the entry it names (`audit.leafIndex`, zero-based as in RFC 9162;
`audit.entrySeq`, its `seq`; `audit.leafHash`), not by the
customer's name: that entry carries the log's own pseudonym of the customer, which an auditor
reads there and the customer finds in their export (`account.audit_pseudonym`).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from sqlmodel import Session, col, select

from cmr_vault.audit.checkpoint import CheckpointError, parse_verifier_key, verify_checkpoint
from cmr_vault.audit.cosignature import WitnessKey, cosignatures
from cmr_vault.audit.cosigning import cosigned_note, published_checkpoint
from cmr_vault.audit.merkle import verify_inclusion
from cmr_vault.audit.service import AppendedEntry
from cmr_vault.audit.tlog_proof import ProofFormatError, TlogProof, parse_proof
from cmr_vault.audit.transparency import (
    TreeCache,
    fresh_checkpoint,
    inclusion_proof,
    signing_key,
    verifier_key,
)
from cmr_vault.clock import Clock
from cmr_vault.consent.models import ConsentReceipt
from cmr_vault.errors import NotFound
from cmr_vault.oauth.models import OAuthClient

FORMAT = "cmr-vault-consent-receipt/2"
# Files downloaded before receipts carried a tlog-proof: a JSON proof, 1-based `index`.
FORMAT_V1 = "cmr-vault-consent-receipt/1"
KANTARA_VERSION = "KI-CR-v1.1.0"
ALGORITHM = "EdDSA"
# What a receipt may be signed with: older receipts name the same key with RFC 9864's "Ed25519".
ACCEPTED_ALGORITHMS = [ALGORITHM, "Ed25519"]
JWS_TYPE = "consent-receipt+jws"

# W3C Data Privacy Vocabulary consent statuses, by the change that led to them.
DPV_STATUS = {
    "given": "dpv:ConsentGiven",
    "renewed": "dpv:RenewedConsentGiven",
    "narrowed": "dpv:ConsentGiven",
    "widened": "dpv:ConsentGiven",
    "revoked": "dpv:ConsentWithdrawn",
    "withdrawn": "dpv:ConsentWithdrawn",
    "relinquished": "dpv:ConsentInvalidated",
    "compromised": "dpv:ConsentInvalidated",
    "expired": "dpv:ConsentExpired",
}


@dataclass(frozen=True)
class ReceiptSigner:
    """What issuing needs: the log's signing seed and the vault's public address."""

    seed: bytes
    issuer: str
    origin: str
    jurisdiction: str
    clock: Clock
    witnesses: tuple[WitnessKey, ...] = ()

    @property
    def verifier_key(self) -> str:
        """The one public key a receipt verifies with."""
        return verifier_key(self.seed, self.origin)


@dataclass(frozen=True)
class ConsentEvent:
    """One change the customer gets a receipt for.

    `purposes` maps each data category (scope, or `opt-in.<channel>`) to its purposes;
    `principal` is the company's pairwise subject for the customer.
    """

    account_id: str
    principal: str
    company: OAuthClient
    change: str
    actor: str
    collection_method: str
    purposes: dict[str, list[str]]
    expires_at: datetime | None
    notice_version: int
    audit_entry: AppendedEntry
    extra: dict[str, Any] = field(default_factory=dict)


def dpv_status(change: str) -> str:
    """The DPV consent status a change leaves the consent in."""
    return DPV_STATUS.get(change, "dpv:ConsentStatus")


def _purposes(event: ConsentEvent) -> list[dict[str, Any]]:
    by_purpose: dict[str, list[str]] = {}
    for category, purposes in event.purposes.items():
        for purpose in purposes or ["unspecified"]:
            by_purpose.setdefault(purpose, []).append(category)
    termination = (f"at {event.expires_at.isoformat()} or when withdrawn"
                   if event.expires_at else "when withdrawn")
    return [{
        "purpose": purpose, "purposeCategory": [purpose], "consentType": "EXPLICIT",
        "piiCategory": sorted(categories), "primaryPurpose": index == 0,
        "termination": termination, "thirdPartyDisclosure": False,
    } for index, (purpose, categories) in enumerate(sorted(by_purpose.items()))]


def claims_of(event: ConsentEvent, *, receipt_id: str, signer: ReceiptSigner) -> dict[str, Any]:
    """The receipt's claims, Kantara 1.1 fields first, then the ISO 27560 record fields."""
    company = event.company
    return {
        "version": KANTARA_VERSION,
        "jurisdiction": signer.jurisdiction,
        "consentTimestamp": int(event.audit_entry.recorded_at.timestamp()),
        "collectionMethod": event.collection_method,
        "consentReceiptID": receipt_id,
        "publicKey": signer.verifier_key,
        "language": "en",
        "piiPrincipalId": event.principal,
        "piiControllers": [{"piiController": company.name, "piiControllerUrl": company.homepage,
                            "contact": company.homepage, "onBehalf": False}],
        "policyUrl": company.privacy_policy_url,
        "services": [{"service": company.name, "purposes": _purposes(event)}],
        "sensitive": False,
        "spiCat": [],
        "iss": signer.issuer,
        "iat": int(signer.clock.now().timestamp()),
        "event": {"type": event.change, "by": event.actor,
                  "at": event.audit_entry.recorded_at.isoformat()},
        "status": dpv_status(event.change),
        "controllerClientId": company.client_id,
        "notice": {"version": event.notice_version, "url": company.privacy_policy_url},
        "expiresAt": event.expires_at.isoformat() if event.expires_at else None,
        **event.extra,
        "audit": {"log": signer.origin, "leafIndex": event.audit_entry.seq - 1,
                  "entrySeq": event.audit_entry.seq, "leafHash": event.audit_entry.leaf_hash},
    }


def _okp_private(seed: bytes) -> OKPKey:
    return OKPKey.import_key(signing_key(seed))


def _okp_public(public: Ed25519PublicKey) -> OKPKey:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": x})


def public_jwk(seed: bytes, origin: str) -> dict[str, Any]:
    """The signing key as a public JWK, for JOSE tooling (`/.well-known/jwks.json`)."""
    _, public = parse_verifier_key(verifier_key(seed, origin))
    jwk = dict(_okp_public(public).as_dict(private=False))
    return {**jwk, "kid": _key_id(seed, origin), "alg": ALGORITHM, "use": "sig"}


def _key_id(seed: bytes, origin: str) -> str:
    return verifier_key(seed, origin).split("+")[1]


def issue(session: Session, signer: ReceiptSigner, event: ConsentEvent) -> ConsentReceipt:
    """Sign and store the receipt for one consent change, in the change's own transaction."""
    receipt_id = str(uuid.uuid4())
    claims = claims_of(event, receipt_id=receipt_id, signer=signer)
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    token = jws.serialize_compact(
        {"alg": ALGORITHM, "typ": JWS_TYPE, "kid": _key_id(signer.seed, signer.origin)},
        payload, _okp_private(signer.seed), algorithms=[ALGORITHM])
    receipt = ConsentReceipt(
        id=receipt_id, account_id=event.account_id, client_id=event.company.client_id,
        event=event.change, audit_seq=event.audit_entry.seq, jws=token,
        issued_at=signer.clock.now(),
    )
    session.add(receipt)
    return receipt


def receipts_of(session: Session, account_id: str) -> list[ConsentReceipt]:
    """The customer's receipts, newest first."""
    return list(session.exec(
        select(ConsentReceipt).where(ConsentReceipt.account_id == account_id)
        .order_by(col(ConsentReceipt.issued_at).desc(), col(ConsentReceipt.audit_seq).desc())
    ).all())


def claims_in(receipt: ConsentReceipt) -> dict[str, Any]:
    """The claims a stored receipt carries (its own signed payload, read without checking)."""
    payload = receipt.jws.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def receipt_file(session: Session, signer: ReceiptSigner, *, tree: TreeCache, account_id: str,
                 receipt_id: str) -> dict[str, Any]:
    """The downloadable receipt: the JWS, its claims for reading, and a C2SP tlog-proof.

    The proof is against the newest checkpoint every configured witness has cosigned, when it
    covers the entry; otherwise against the newest signed one (signed on the spot if the
    periodic signer has not got there yet), which witnesses cosign within a signer pass or
    two: downloading again then gives a proof carrying their cosignatures.
    """
    receipt = session.get(ConsentReceipt, receipt_id)
    if receipt is None or receipt.account_id != account_id:
        raise NotFound("You have no such receipt.")
    checkpoint = published_checkpoint(session, [w.name for w in signer.witnesses])
    if checkpoint is None or checkpoint.size < receipt.audit_seq:
        checkpoint = fresh_checkpoint(session, tree=tree, seed=signer.seed,
                                      origin=signer.origin, clock=signer.clock,
                                      covering=receipt.audit_seq)
    path = inclusion_proof(session, tree=tree, seq=receipt.audit_seq, size=checkpoint.size)
    note = cosigned_note(session, checkpoint)
    return {
        "format": FORMAT,
        "receipt": receipt.jws,
        "claims": claims_in(receipt),
        "tlog_proof": TlogProof(receipt.audit_seq - 1, path, note).to_text(),
        "verifier_key": signer.verifier_key,
        "cosigned_by": sorted(cosignatures(note, list(signer.witnesses))),
    }


@dataclass(frozen=True)
class ReceiptCheck:
    """The outcome of checking a receipt: valid only when `problems` is empty."""

    problems: list[str]
    claims: dict[str, Any] | None = None
    cosigned_by: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the signature, the log proof and the tree head all check out."""
        return not self.problems


def verify_file(document: bytes | str, verifier: str,
                witnesses: Sequence[WitnessKey] = ()) -> ReceiptCheck:
    """Check a receipt file with nothing but the vault's public verifier key and the public
    keys of the witnesses the checker relies on (every one of them must have cosigned).

    Any changed byte fails: in the JWS (signature), in the readable claims (they must equal
    the signed payload), in the proof (the path no longer leads to the signed root), in the
    tree head (its signature) or in a cosignature.
    """
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        return ReceiptCheck([f"not a JSON document: {exc}"])
    if not isinstance(data, dict) or data.get("format") not in (FORMAT, FORMAT_V1):
        return ReceiptCheck([f"not a consent receipt (format is not {FORMAT!r})"])
    try:
        name, public = parse_verifier_key(verifier)
    except CheckpointError as exc:
        return ReceiptCheck([f"the verifier key is not usable: {exc}"])
    try:
        signed = jws.deserialize_compact(str(data.get("receipt", "")), _okp_public(public),
                                         algorithms=ACCEPTED_ALGORITHMS)
        claims = json.loads(signed.payload)
    except (JoseError, ValueError) as exc:
        return ReceiptCheck([f"the receipt's signature does not verify: {exc}"])
    problems = []
    if data.get("claims") != claims:
        problems.append("the readable claims differ from the signed receipt")
    if data.get("format") == FORMAT_V1:
        problems.extend(_proof_problems(data.get("proof"), claims, public, name))
        problems.extend(f"the receipt carries no cosignature by {w.name}" for w in witnesses)
        return ReceiptCheck(problems, claims)
    tlog_problems, cosigned_by = _tlog_proof_problems(data.get("tlog_proof"), claims, public,
                                                      name, witnesses)
    return ReceiptCheck(problems + tlog_problems, claims, cosigned_by)


def _signed_leaf_index(claims: dict[str, Any]) -> int:
    """The zero-based leaf index the receipt names (receipts before `leafIndex` named the
    entry's 1-based `index`)."""
    audit = claims["audit"]
    return int(audit["leafIndex"]) if "leafIndex" in audit else int(audit["index"]) - 1


def _tlog_proof_problems(text: Any, claims: dict[str, Any], public: Ed25519PublicKey,
                         name: str, witnesses: Sequence[WitnessKey]
                         ) -> tuple[list[str], list[str]]:
    """Check the C2SP tlog-proof: log signature, cosignatures, inclusion of the named leaf."""
    try:
        proof = parse_proof(str(text)) if isinstance(text, str) else None
        if proof is None:
            return ["the receipt carries no log proof"], []
        head = verify_checkpoint(proof.checkpoint, public, name)
        leaf = bytes.fromhex(claims["audit"]["leafHash"])
        signed_index = _signed_leaf_index(claims)
    except ProofFormatError as exc:
        return [f"the log proof is malformed: {exc}"], []
    except CheckpointError as exc:
        return [f"the tree head does not verify: {exc}"], []
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the receipt names no log entry: {exc}"], []
    problems = []
    try:
        cosigned = cosignatures(proof.checkpoint, list(witnesses))
    except CheckpointError as exc:
        problems.append(f"a witness cosignature does not verify: {exc}")
        cosigned = {}
    problems.extend(f"the tree head is not cosigned by witness {w.name}" for w in witnesses
                    if w.name not in cosigned)
    if proof.index != signed_index:
        problems.append("the proof is for another log entry than the receipt names")
    if head.origin != claims["audit"].get("log"):
        problems.append("the proof's tree head is of another log than the receipt names")
    if not verify_inclusion(leaf, proof.index, head.size, proof.path, head.root_hash):
        problems.append("the log proof does not lead to the signed tree head")
    return problems, sorted(cosigned)


def _proof_problems(proof: Any, claims: dict[str, Any], public: Ed25519PublicKey,
                    name: str) -> list[str]:
    if not isinstance(proof, dict):
        return ["the receipt carries no log proof"]
    try:
        head = verify_checkpoint(str(proof["checkpoint"]), public, name)
        index, size = int(proof["index"]), int(proof["tree_size"])
        path = [bytes.fromhex(node) for node in proof["inclusion_path"]]
        leaf = bytes.fromhex(claims["audit"]["leafHash"])
        signed_index = _signed_leaf_index(claims) + 1
    except CheckpointError as exc:
        return [f"the tree head does not verify: {exc}"]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the log proof is malformed: {exc}"]
    problems = []
    if index != signed_index:
        problems.append("the proof is for another log entry than the receipt names")
    if size != head.size or head.origin != claims["audit"].get("log"):
        problems.append("the proof's tree head is not the one it claims")
    if not 1 <= index <= head.size or not verify_inclusion(leaf, index - 1, head.size, path,
                                                          head.root_hash):
        problems.append("the log proof does not lead to the signed tree head")
    return problems
