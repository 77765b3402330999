"""Consent receipts: issued on every change, listed in the portal, verifiable with one key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.audit.checkpoint import verifier_key_for
from cmr_vault.cli import main
from cmr_vault.consent.models import Grant
from cmr_vault.consent.receipts import verify_file
from cmr_vault.runtime import Runtime
from tests.auditor.conftest import auditor_browser
from tests.factories import DEFAULT_PASSWORD, Browser
from tests.oauth.flows import Company, get_code, redeem, register_company

__all__ = ["auditor_browser"]


@pytest.fixture
def connected_grant(browser: Browser, company: Company, db_session: Session) -> Grant:
    get_code(browser, company, scopes=["profile.email:read", "marketing.email"])
    db_session.rollback()
    return db_session.exec(select(Grant)).one()


def _receipt_ids(browser: Browser) -> list[str]:
    """The receipts listed, by the link to each one's signed file."""
    return re.findall(r'href="/receipts/([^".]+)\.json"', browser.client.get("/receipts").text)


def _download(browser: Browser, receipt_id: str) -> bytes:
    response = browser.client.get(f"/receipts/{receipt_id}.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    return response.content


def _verifier_key(client: TestClient[Litestar]) -> str:
    return str(client.get("/api/v1/audit/verifier-key").json()["verifier_key"])


def test_every_grant_change_gives_the_customer_a_receipt(
    browser: Browser, connected_grant: Grant
) -> None:
    browser.submit(f"/connections/{connected_grant.id}/revoke", {"scope": "marketing.email"},
                   page="/connections")
    browser.submit(f"/connections/{connected_grant.id}/revoke", {}, page="/connections")
    page = browser.client.get("/receipts").text
    assert len(_receipt_ids(browser)) == 3
    name = connected_grant.client_id
    assert "You revoked all of" in page
    assert "You withdrew a permission from" in page
    assert "send you messages by e-mail" in page
    assert "dpv:" not in page and name not in page


def test_a_receipt_verifies_with_only_the_public_key(
    browser: Browser, client: TestClient[Litestar], connected_grant: Grant, company: Company
) -> None:
    document = _download(browser, _receipt_ids(browser)[0])

    check = verify_file(document, _verifier_key(client))

    assert check.valid, check.problems
    claims = check.claims or {}
    assert claims["version"] == "KI-CR-v1.1.0"
    assert claims["piiControllers"][0]["piiController"] == company.row.name
    assert claims["policyUrl"] == "https://shop.example/privacy"
    purposes = {p["purpose"]: p for p in claims["services"][0]["purposes"]}
    assert purposes["Send your order receipts"]["piiCategory"] == ["profile.email:read"]
    assert purposes["Send your order receipts"]["consentType"] == "EXPLICIT"
    assert claims["status"] == "dpv:ConsentGiven"
    assert "ada@example.org" not in document.decode()


@pytest.mark.parametrize("where", ["jws", "claims", "proof", "checkpoint"])
def test_a_receipt_with_one_changed_byte_does_not_verify(
    browser: Browser, client: TestClient[Litestar], connected_grant: Grant, where: str
) -> None:
    data = json.loads(_download(browser, _receipt_ids(browser)[0]))
    if where == "jws":
        head, payload, signature = data["receipt"].split(".")
        flipped = "A" if signature[10] != "A" else "B"
        data["receipt"] = f"{head}.{payload}.{signature[:10]}{flipped}{signature[11:]}"
    elif where == "claims":
        data["claims"]["jurisdiction"] = "XX"
    elif where == "proof":
        header, index, *rest = data["tlog_proof"].split("\n")
        data["tlog_proof"] = "\n".join([header, f"index {int(index.split()[1]) + 1}", *rest])
    else:
        proof, checkpoint = data["tlog_proof"].split("\n\n", 1)
        origin, size, root, *rest = checkpoint.split("\n")
        root = ("B" if root[0] == "A" else "A") + root[1:]
        data["tlog_proof"] = proof + "\n\n" + "\n".join([origin, size, root, *rest])

    check = verify_file(json.dumps(data), _verifier_key(client))

    assert not check.valid
    assert check.problems


def test_a_receipt_signed_by_another_key_does_not_verify(
    browser: Browser, connected_grant: Grant
) -> None:
    stranger = verifier_key_for(Ed25519PrivateKey.generate(), "127.0.0.1:8000/audit")
    check = verify_file(_download(browser, _receipt_ids(browser)[0]), stranger)
    assert not check.valid


def test_the_api_checks_a_receipt_for_anyone(
    browser: Browser, client: TestClient[Litestar], connected_grant: Grant
) -> None:
    data = json.loads(_download(browser, _receipt_ids(browser)[0]))
    assert client.post("/api/v1/receipts/verify", json=data).json()["valid"] is True
    data["claims"]["sensitive"] = True
    answer = client.post("/api/v1/receipts/verify", json=data).json()
    assert answer["valid"] is False
    assert "differ from the signed receipt" in answer["problems"][0]


def test_the_cli_verifies_a_downloaded_receipt_and_names_a_broken_one(
    browser: Browser, client: TestClient[Litestar], connected_grant: Grant, tmp_path: Path,
    cli_env: None,
) -> None:
    good = tmp_path / "receipt.json"
    good.write_bytes(_download(browser, _receipt_ids(browser)[0]))
    key = _verifier_key(client)
    runner = CliRunner()
    result = runner.invoke(main, ["receipts", "verify", str(good), "--verifier-key", key])
    assert result.exit_code == 0, result.output
    assert "Valid." in result.output
    bad = tmp_path / "bad.json"
    bad.write_text(good.read_text().replace('"jurisdiction": "EU"', '"jurisdiction": "EV"', 1))
    result = runner.invoke(main, ["receipts", "verify", str(bad), "--verifier-key", key])
    assert result.exit_code == 1
    assert "bad.json" in result.output


def test_someone_elses_receipt_is_not_found(
    browser: Browser, connected_grant: Grant, other_client: TestClient[Litestar],
) -> None:
    receipt_id = _receipt_ids(browser)[0]
    stranger = Browser(other_client)
    stranger.sign_up()
    assert stranger.client.get(f"/receipts/{receipt_id}.json").status_code == 404


def test_the_vault_publishes_its_receipt_key_as_a_jwk(client: TestClient[Litestar]) -> None:
    keys: list[dict[str, Any]] = client.get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519"
    assert "d" not in keys[0]


def test_the_export_holds_grants_with_history_receipts_and_the_access_log(
    browser: Browser, connected_grant: Grant
) -> None:
    browser.submit(f"/connections/{connected_grant.id}/revoke", {"scope": "marketing.email"},
                   page="/connections")
    document = json.loads(browser.submit("/export", {"password": DEFAULT_PASSWORD}).content)

    connection = document["connections"][0]
    assert [h["change"] for h in connection["history"]] == ["narrowed", "given"]
    assert connection["dpv_status"] == "dpv:ConsentGiven"
    assert [r["event"] for r in document["receipts"]] == ["narrowed", "given"]
    assert all(r["jws"].count(".") == 2 for r in document["receipts"])
    assert {"grant.given", "grant.narrowed"} <= {e["action"] for e in document["access_log"]}
    assert {"profile", "marketing", "reminders"} <= set(document)


def test_two_companies_receipts_name_the_customer_differently_yet_each_ties_to_the_log(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session,
    runtime: Runtime, auditor_browser: Browser,
) -> None:
    other = register_company(db_session, runtime, name="Other Shop")
    subjects = {}
    for shop in (company, other):
        code, verifier = get_code(browser, shop, scopes=["profile.email:read"])
        assert redeem(client, shop, code, verifier).status_code == 200
        subjects[shop.client_id] = client.get("/api/v1/grants", headers=shop.auth()).json()[
            "grants"][0]["subject"]
    receipts = [json.loads(_download(browser, rid)) for rid in _receipt_ids(browser)]
    document = json.loads(browser.submit("/export", {"password": DEFAULT_PASSWORD}).content)
    log = {entry["seq"]: entry for entry in document["access_log"]}
    audited = {entry["seq"] for entry in auditor_browser.client.get(
        "/api/v1/auditor/entries", params={"subject": document["account"]["audit_pseudonym"]}
    ).json()["entries"]}

    claims = {r["claims"]["controllerClientId"]: r["claims"] for r in receipts}
    assert claims.keys() == subjects.keys()
    for client_id, claim in claims.items():
        # the company's own name for the customer, and no other company's
        assert claim["piiPrincipalId"] == subjects[client_id]
        # the customer ties it to their log; an auditor finds the same entry and pseudonym
        entry = log[claim["audit"]["entrySeq"]]
        assert claim["audit"]["leafIndex"] == claim["audit"]["entrySeq"] - 1
        assert (entry["action"], entry["details"]["company"]) == ("grant.given", client_id)
        assert claim["audit"]["entrySeq"] in audited
    assert len({claim["piiPrincipalId"] for claim in claims.values()}) == 2
    assert all(verify_file(json.dumps(r), _verifier_key(client)).valid for r in receipts)


def test_a_receipt_verifies_with_pyjwt_against_the_published_key(
    browser: Browser, connected_grant: Grant, client: TestClient[Litestar]
) -> None:
    """PyJWT knows Ed25519 signatures only as RFC 8037's `EdDSA`: receipts must say that."""
    token = json.loads(_download(browser, _receipt_ids(browser)[0]))["receipt"]
    published = client.get("/.well-known/jwks.json").json()["keys"]
    key = next(k for k in published if k["kid"] == jwt.get_unverified_header(token)["kid"])

    claims = jwt.decode(token, key=jwt.PyJWK(key), algorithms=["EdDSA"])

    assert claims["controllerClientId"] == connected_grant.client_id
    assert claims["piiPrincipalId"] == connected_grant.pairwise_subject
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, key=jwt.PyJWK(key), algorithms=["EdDSA"])
