"""A company on requests-oauth2client, a third-party client that speaks PAR, RAR and DPoP
(its proofs and keys come from jwskate, not from the vault's JOSE library), given only the
issuer's metadata: it pushes its request, the customer consents, it redeems the code with a
DPoP proof (taking the server's nonce), reads with a bound token and refreshes."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from requests_oauth2client import DPoPToken, OAuth2Client
from sqlmodel import Session, select

from cmr_vault.consent.models import Grant
from cmr_vault.oauth.authorization_details import DETAILS_TYPE
from cmr_vault.runtime import Runtime
from tests.conftest import BASE_URL, reads_real_time
from tests.factories import Browser
from tests.oauth.flows import REDIRECT_URI, Company, consent, register_company
from tests.oauth.holder_of_key import requests_session

RECEIPTS = "Send your order receipts"


@pytest.fixture
@reads_real_time  # the client library signs its DPoP proofs with the process clock
def hardened(db_session: Session, runtime: Runtime) -> Company:
    """A confidential company the operator holds to PAR and DPoP."""
    company = register_company(db_session, runtime)
    company.row.require_par = True
    company.row.require_dpop = True
    db_session.add(company.row)
    db_session.commit()
    return company


def test_a_company_held_to_par_and_dpop_completes_the_flow_and_reads(
    hardened: Company, browser: Browser, client: TestClient[Litestar], db_session: Session
) -> None:
    assert hardened.secret is not None
    oauth = OAuth2Client.from_discovery_endpoint(
        f"{BASE_URL}/.well-known/oauth-authorization-server",
        issuer=BASE_URL,
        auth=(hardened.client_id, hardened.secret),
        session=requests_session(client),
        redirect_uri=REDIRECT_URI,
        dpop_bound_access_tokens=True,
        testing=True,
    )
    asked = [{"type": DETAILS_TYPE, "fields": ["email"], "purposes": [RECEIPTS]}]
    request = oauth.authorization_request(
        scope=None, nonce=None, authorization_details=json.dumps(asked)
    )
    pushed = oauth.pushed_authorization_request(request)
    assert "request_uri=urn" in pushed.uri

    answer = consent(browser, urlsplit(pushed.uri).query, scopes=["profile.email:read"])
    token = oauth.authorization_code(request.validate_callback(answer.headers["location"]))
    assert isinstance(token, DPoPToken)
    assert token.kwargs["authorization_details"][0]["fields"] == ["email"]

    db_session.rollback()
    subject = db_session.exec(select(Grant)).one().pairwise_subject
    api = requests_session(client)
    read = api.get(
        f"{BASE_URL}/api/v1/subjects/{subject}/profile",
        params={"fields": "email", "purpose": RECEIPTS},
        auth=token,
    )
    assert read.status_code == 200, read.text
    assert read.json()["fields"] == {"email": "ada@example.org"}
    stolen = api.get(
        f"{BASE_URL}/api/v1/subjects/{subject}/profile",
        params={"fields": "email", "purpose": RECEIPTS},
        headers={"Authorization": f"Bearer {token.access_token}"},
    )
    assert stolen.status_code == 401

    renewed = oauth.refresh_token(token)
    assert isinstance(renewed, DPoPToken)
    again = api.get(
        f"{BASE_URL}/api/v1/subjects/{subject}/profile",
        params={"fields": "email", "purpose": RECEIPTS},
        auth=renewed,
    )
    assert again.status_code == 200, again.text


def test_a_company_held_to_par_cannot_skip_it_with_this_client(
    hardened: Company, browser: Browser, client: TestClient[Litestar]
) -> None:
    assert hardened.secret is not None
    oauth = OAuth2Client.from_discovery_endpoint(
        f"{BASE_URL}/.well-known/oauth-authorization-server",
        issuer=BASE_URL,
        auth=(hardened.client_id, hardened.secret),
        session=requests_session(client),
        redirect_uri=REDIRECT_URI,
        testing=True,
    )
    request = oauth.authorization_request(scope="profile.email:read", nonce=None)
    page = browser.client.get(request.uri, follow_redirects=False)
    assert page.status_code == 302
    assert "error=invalid_request" in page.headers["location"]
    assert "code=" not in page.headers["location"]
