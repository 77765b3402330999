"""RFC 9449 DPoP: tokens bound to the company's key, proofs checked at the token endpoint and
at the resource API, a server nonce, and replays refused through the database.

Proofs are built with joserfc from the test's own key, as a company would (checklist L4).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from cmr_vault.oauth import dpop
from cmr_vault.runtime import Runtime
from tests.conftest import BASE_URL, FrozenClock
from tests.factories import Browser
from tests.oauth.flows import (
    REDIRECT_URI,
    Company,
    authorize_query,
    consent,
    get_code,
    introspect,
    pkce_pair,
    redirect_params,
)
from tests.oauth.holder_of_key import DPoPHolder

TOKEN_URL = f"{BASE_URL}/oauth/token"
RECEIPTS = "Send your order receipts"


def token_request(
    client: TestClient[Litestar],
    company: Company,
    holder: DPoPHolder | None,
    data: dict[str, str],
    *,
    proof: str | None = None,
) -> Any:
    """POST to the token endpoint with a fresh proof by `holder` (or the one given)."""
    headers = dict(company.auth())
    if proof is None and holder is not None:
        proof = holder.proof("POST", TOKEN_URL)
    if proof is not None:
        headers["DPoP"] = proof
    return client.post("/oauth/token", data={**data, **company.form()}, headers=headers)


def bound_tokens(
    client: TestClient[Litestar], company: Company, holder: DPoPHolder, code: str, verifier: str
) -> dict[str, Any]:
    """Redeem a code with DPoP, taking the server's nonce the way a client library does."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    first = token_request(client, company, holder, data)
    assert first.status_code == 400, first.text
    assert first.json()["error"] == "use_dpop_nonce"
    holder.nonce = first.headers["dpop-nonce"]
    second = token_request(client, company, holder, data)
    assert second.status_code == 200, second.text
    return dict(second.json())


def read_profile(
    client: TestClient[Litestar], subject: str, authorization: str, proof: str | None = None
) -> Any:
    headers = {"Authorization": authorization}
    if proof is not None:
        headers["DPoP"] = proof
    return client.get(
        f"/api/v1/subjects/{subject}/profile",
        params={"fields": "email", "purpose": RECEIPTS},
        headers=headers,
    )


def profile_url(subject: str) -> str:
    return f"{BASE_URL}/api/v1/subjects/{subject}/profile"


@pytest.fixture
def holder(clock: FrozenClock) -> DPoPHolder:
    return DPoPHolder(clock)


@pytest.fixture
def bound(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    holder: DPoPHolder,
    db_session: Session,
) -> dict[str, Any]:
    """DPoP-bound tokens for e-mail, and the company's subject for the customer."""
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    tokens = bound_tokens(client, company, holder, code, verifier)
    db_session.rollback()
    tokens["subject"] = db_session.exec(select(Grant)).one().pairwise_subject
    return tokens


def test_tokens_are_bound_to_the_key_that_signed_the_proof(
    bound: dict[str, Any], client: TestClient[Litestar], company: Company, holder: DPoPHolder
) -> None:
    assert bound["token_type"] == "DPoP"
    seen = introspect(client, company, bound["access_token"])
    assert seen["token_type"] == "DPoP"
    assert seen["cnf"] == {"jkt": holder.jkt}


def test_a_bound_token_reads_with_a_proof_by_its_key(
    bound: dict[str, Any], client: TestClient[Litestar], holder: DPoPHolder
) -> None:
    token, subject = bound["access_token"], bound["subject"]
    proof = holder.proof("GET", profile_url(subject), access_token=token)
    response = read_profile(client, subject, f"DPoP {token}", proof)
    assert response.status_code == 200, response.text
    assert response.json()["fields"] == {"email": "ada@example.org"}


def test_the_nonce_request_does_not_spend_the_code(
    browser: Browser, client: TestClient[Litestar], company: Company, holder: DPoPHolder
) -> None:
    code, verifier = get_code(browser, company)
    assert bound_tokens(client, company, holder, code, verifier)["access_token"]


def test_a_nonce_from_the_window_before_is_accepted_and_an_older_one_is_not(
    runtime: Runtime, clock: FrozenClock
) -> None:
    key = runtime.keyring.pseudonym_key
    nonce = dpop.issue_nonce(key, clock.now())
    clock.advance(seconds=dpop.NONCE_PERIOD)
    assert dpop.nonce_is_current(key, nonce, clock.now())
    clock.advance(seconds=dpop.NONCE_PERIOD)
    assert not dpop.nonce_is_current(key, nonce, clock.now())


def test_a_company_that_must_use_dpop_gets_no_token_without_a_proof(
    browser: Browser, client: TestClient[Litestar], company: Company, db_session: Session
) -> None:
    company.row.require_dpop = True
    db_session.add(company.row)
    db_session.commit()
    code, verifier = get_code(browser, company)
    response = token_request(
        client,
        company,
        None,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"


def test_a_bound_refresh_token_refreshes_only_with_its_key(
    bound: dict[str, Any],
    client: TestClient[Litestar],
    company: Company,
    holder: DPoPHolder,
    clock: FrozenClock,
) -> None:
    refresh = {"grant_type": "refresh_token", "refresh_token": bound["refresh_token"]}
    assert token_request(client, company, None, refresh).json()["error"] == "invalid_dpop_proof"
    thief = DPoPHolder(clock, nonce=holder.nonce)
    stolen = token_request(client, company, thief, refresh)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_dpop_proof"
    renewed = token_request(client, company, holder, refresh)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    assert introspect(client, company, renewed.json()["access_token"])["cnf"] == {"jkt": holder.jkt}


def test_a_bearer_token_is_not_accepted_with_the_dpop_scheme(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    holder: DPoPHolder,
    db_session: Session,
) -> None:
    code, verifier = get_code(browser, company, scopes=["profile.email:read"])
    token = token_request(
        client,
        company,
        None,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    ).json()["access_token"]
    db_session.rollback()
    subject = db_session.exec(select(Grant)).one().pairwise_subject
    assert read_profile(client, subject, f"Bearer {token}").status_code == 200
    proof = holder.proof("GET", profile_url(subject), access_token=token)
    assert read_profile(client, subject, f"DPoP {token}", proof).status_code == 401


# Each way a proof can be wrong (checklist L4), and two that are within the tolerance.
BAD_PROOFS = {
    "typ missing": {"drop": ("typ",)},
    "typ is plain JWT": {"header": {"typ": "JWT"}},
    "alg is symmetric": {"header": {"alg": "HS256"}},
    "alg none, no signature": {"unsigned": True},
    "jwk missing": {"drop": ("jwk",)},
    "private key in jwk": {"private_jwk": True},
    "jti missing": {"drop": ("jti",)},
    "htm is PUT": {"claims": {"htm": "PUT"}},
    "htu is another URL": {"claims": {"htu": f"{BASE_URL}/api/v1/grants"}},
    "iat an hour ago": {"iat_shift": -3600},
    "iat an hour ahead": {"iat_shift": 3600},
    "ath of another token": {"claims": {"ath": "x" * 43}},
    "ath missing": {"drop": ("ath",)},
    "signed by another key": {"other_signer": True},
}


def _proof(
    holder: DPoPHolder, clock: FrozenClock, url: str, token: str, case: dict[str, Any]
) -> str:
    claims = dict(case.get("claims", {}))
    if "iat_shift" in case:
        claims["iat"] = int(clock.now().timestamp()) + case["iat_shift"]
    header = dict(case.get("header", {}))
    if case.get("private_jwk"):
        header["jwk"] = holder.key.as_dict(private=True)
    if case.get("other_signer"):
        header["jwk"] = DPoPHolder(clock).key.as_dict(private=False)
    if header.get("alg") == "HS256":
        return _symmetric_proof(holder, url, token)
    if case.get("unsigned"):
        signed = holder.proof("GET", url, access_token=token)
        _, payload, _ = signed.split(".")
        unsigned = {"typ": "dpop+jwt", "alg": "none", "jwk": holder.key.as_dict(private=False)}
        encoded = base64.urlsafe_b64encode(json.dumps(unsigned).encode()).rstrip(b"=")
        return f"{encoded.decode()}.{payload}."
    return holder.proof(
        "GET", url, access_token=token, header=header, claims=claims, drop=case.get("drop", ())
    )


def _symmetric_proof(holder: DPoPHolder, url: str, token: str) -> str:
    from joserfc import jws
    from joserfc.jwk import OctKey

    secret = OctKey.generate_key(256)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": secret.as_dict(private=False)}
    return jws.serialize_compact(
        header, b'{"jti":"a","htm":"GET","htu":"%s"}' % url.encode(), secret, algorithms=["HS256"]
    )


@pytest.mark.parametrize("case", BAD_PROOFS.values(), ids=BAD_PROOFS.keys())
def test_a_bad_proof_is_refused_at_the_resource_api(
    bound: dict[str, Any],
    client: TestClient[Litestar],
    holder: DPoPHolder,
    clock: FrozenClock,
    case: dict[str, Any],
) -> None:
    token, subject = bound["access_token"], bound["subject"]
    response = read_profile(
        client, subject, f"DPoP {token}", _proof(holder, clock, profile_url(subject), token, case)
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("DPoP ")
    assert "ada@example.org" not in response.text


@pytest.mark.parametrize("shift", [-10, 8], ids=["10 s old", "8 s ahead"])
def test_a_proof_within_the_clock_tolerance_is_accepted(
    bound: dict[str, Any],
    client: TestClient[Litestar],
    holder: DPoPHolder,
    clock: FrozenClock,
    shift: int,
) -> None:
    token, subject = bound["access_token"], bound["subject"]
    proof = holder.proof(
        "GET",
        profile_url(subject),
        access_token=token,
        claims={"iat": int(clock.now().timestamp()) + shift},
    )
    assert read_profile(client, subject, f"DPoP {token}", proof).status_code == 200


def test_two_dpop_headers_are_refused(
    bound: dict[str, Any], client: TestClient[Litestar], holder: DPoPHolder
) -> None:
    token, subject = bound["access_token"], bound["subject"]
    url = profile_url(subject)
    response = client.get(
        url,
        params={"fields": "email", "purpose": RECEIPTS},
        headers=[
            ("Authorization", f"DPoP {token}"),
            ("DPoP", holder.proof("GET", url, access_token=token)),
            ("DPoP", holder.proof("GET", url, access_token=token)),
        ],
    )
    assert response.status_code == 401


def test_a_code_bound_with_dpop_jkt_is_redeemed_only_with_that_key(
    browser: Browser,
    client: TestClient[Litestar],
    company: Company,
    holder: DPoPHolder,
    clock: FrozenClock,
) -> None:
    verifier, challenge = pkce_pair()
    answer = consent(browser, authorize_query(company, challenge=challenge, dpop_jkt=holder.jkt))
    code = redirect_params(answer)["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    thief = DPoPHolder(clock)
    thief.nonce = token_request(client, company, thief, data).headers["dpop-nonce"]
    stolen = token_request(client, company, thief, data)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_dpop_proof"
    assert token_request(client, company, None, data).json()["error"] == "invalid_dpop_proof"
    assert bound_tokens(client, company, holder, code, verifier)["token_type"] == "DPoP"


def test_a_malformed_dpop_jkt_is_refused_at_authorize(browser: Browser, company: Company) -> None:
    query = authorize_query(company, challenge=pkce_pair()[1], dpop_jkt="not-a-thumbprint")
    page = browser.client.get(f"/oauth/authorize?{query}", follow_redirects=False)
    assert redirect_params(page)["error"] == "invalid_request"


def test_the_server_metadata_lists_only_asymmetric_dpop_algorithms(
    client: TestClient[Litestar],
) -> None:
    algorithms = client.get("/.well-known/oauth-authorization-server").json()[
        "dpop_signing_alg_values_supported"
    ]
    assert "ES256" in algorithms
    assert not {"none", "HS256"} & set(algorithms)
