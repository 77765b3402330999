"""OpenID Connect, driven by authlib's client and checked with joserfc against the published keys.

Nothing here asks the vault's own code whether a token is good: the company discovers the
endpoints, signs the customer in with PKCE, validates the id_token with the JWK set the
discovery document points to, and reads with the `sub` it learnt.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.consent.models import ConsentReceipt, Grant
from cmr_vault.consent.receipts import claims_in
from cmr_vault.crypto.keyring import read_keyring, write_keyring
from cmr_vault.oauth import jwks
from cmr_vault.runtime import Runtime
from tests.conftest import BASE_URL, FrozenClock
from tests.factories import Browser
from tests.oauth.flows import Company, consent, register_company
from tests.oauth.oidc_clients import (
    NATIVE_REDIRECT,
    oauth_client,
    sign_in,
    validated_id_token,
)

NOTICE = {"openid": ["Sign you in"], "profile.email:read": ["Send your order receipts"]}


@pytest.fixture
def native_app(db_session: Session, runtime: Runtime) -> Company:
    """A public client (a native app): no secret, PKCE only."""
    return register_company(
        db_session, runtime, public=True, redirect_uris=[NATIVE_REDIRECT], notice=NOTICE
    )


@pytest.fixture
def discovered(client: TestClient[Litestar]) -> dict[str, Any]:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    return dict(response.json())


def test_discovery_offers_openid_with_pairwise_subjects_only(discovered: dict[str, Any]) -> None:
    assert discovered["issuer"] == BASE_URL
    assert "openid" in discovered["scopes_supported"]
    assert discovered["subject_types_supported"] == ["pairwise"]
    assert discovered["jwks_uri"] == f"{BASE_URL}/.well-known/jwks.json"
    assert discovered["userinfo_endpoint"] == f"{BASE_URL}/oauth/userinfo"
    assert {"ES256", "EdDSA"} <= set(discovered["id_token_signing_alg_values_supported"])


def test_a_public_client_signs_the_customer_in_learns_sub_and_reads(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
    clock: FrozenClock,
) -> None:
    with oauth_client(client, native_app) as oauth:
        token, nonce = sign_in(oauth, browser, discovered)
        claims = validated_id_token(oauth, discovered, token, nonce, clock)

        read = oauth.get(
            f"{BASE_URL}/api/v1/subjects/{claims['sub']}/profile",
            params={"fields": "email", "purpose": "Send your order receipts"},
        )
        userinfo = oauth.get(discovered["userinfo_endpoint"])

    assert read.status_code == 200, read.text
    assert read.json()["fields"] == {"email": "ada@example.org"}
    assert userinfo.json() == {"sub": claims["sub"]}
    assert claims["aud"] == native_app.client_id
    assert "email" not in claims  # profile fields leave only through purposeful reads


def test_auth_time_is_when_the_customer_signed_in(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
    clock: FrozenClock,
) -> None:
    signed_in = int(clock.now().timestamp())
    clock.advance(minutes=7)
    with oauth_client(client, native_app) as oauth:
        token, nonce = sign_in(oauth, browser, discovered)
        claims = validated_id_token(oauth, discovered, token, nonce, clock)
    assert claims["auth_time"] == signed_in
    assert claims["iat"] == signed_in + 7 * 60


def test_a_nonce_is_accepted_once(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
) -> None:
    with oauth_client(client, native_app) as oauth:
        verifier = secrets.token_urlsafe(48)
        url, _ = oauth.create_authorization_url(
            discovered["authorization_endpoint"], code_verifier=verifier, nonce="same-nonce"
        )
        assert consent(browser, urlsplit(url).query).status_code == 303
        url, _ = oauth.create_authorization_url(
            discovered["authorization_endpoint"], code_verifier=verifier, nonce="same-nonce"
        )
    replayed = browser.client.get(
        urlsplit(url).path + "?" + urlsplit(url).query, follow_redirects=False
    )
    assert replayed.status_code == 302
    assert "error=invalid_request" in replayed.headers["location"]


def test_without_openid_chosen_there_is_no_id_token_and_no_userinfo(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
) -> None:
    with oauth_client(client, native_app) as oauth:
        token, _ = sign_in(oauth, browser, discovered, scopes=["profile.email:read"])
        userinfo = oauth.get(discovered["userinfo_endpoint"])
    assert "id_token" not in token
    assert userinfo.status_code == 403
    assert 'error="insufficient_scope"' in userinfo.headers["www-authenticate"]


def test_the_consent_screen_shows_openid_like_any_other_scope(
    browser: Browser,
    native_app: Company,
    client: TestClient[Litestar],
    discovered: dict[str, Any],
) -> None:
    with oauth_client(client, native_app) as oauth:
        url, _ = oauth.create_authorization_url(
            discovered["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48)
        )
    page = browser.client.get(urlsplit(url).path + "?" + urlsplit(url).query).text
    assert 'name="scope" value="openid"' in page
    assert "Recognise you when you sign in" in page
    assert "Sign you in" in page


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_a_company_gets_id_tokens_in_the_algorithm_it_registered(
    alg: str,
    browser: Browser,
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    key_file = runtime.settings.resolved_key_file
    write_keyring(key_file, jwks.rotated(read_keyring(key_file), clock.now()))
    company = register_company(db_session, runtime, notice=NOTICE)
    company.row.id_token_alg = alg
    db_session.add(company.row)
    db_session.commit()
    discovered = client.get("/.well-known/openid-configuration").json()
    with oauth_client(client, company, redirect_uri="https://shop.example/cb") as oauth:
        token, nonce = sign_in(oauth, browser, discovered)
        claims = validated_id_token(oauth, discovered, token, nonce, clock)
    assert (
        jwt.decode(
            token["id_token"],
            KeySet.import_key_set(client.get("/.well-known/jwks.json").json()),
            algorithms=[alg],
        ).header["alg"]
        == alg
    )
    assert claims["aud"] == company.client_id


def test_after_rotation_the_old_key_is_published_until_its_tokens_expire(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    with oauth_client(client, native_app) as oauth:
        token, nonce = sign_in(oauth, browser, discovered)
    key_file = runtime.settings.resolved_key_file
    write_keyring(key_file, jwks.rotated(read_keyring(key_file), clock.now()))

    with oauth_client(client, native_app) as oauth:
        assert validated_id_token(oauth, discovered, token, nonce, clock)["sub"]
        clock.advance(seconds=jwks.ID_TOKEN_LIFETIME.total_seconds())
        keys = oauth.get(discovered["jwks_uri"], withhold_token=True).json()["keys"]
    published = {k["kid"] for k in keys}
    assert extract_compact(token["id_token"].encode()).headers()["kid"] not in published
    assert any(kid.endswith("-es256") for kid in published)


def test_an_overlong_nonce_is_refused_back_to_the_company(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
) -> None:
    with oauth_client(client, native_app) as oauth:
        url, _ = oauth.create_authorization_url(
            discovered["authorization_endpoint"],
            code_verifier=secrets.token_urlsafe(48),
            nonce="n" * 256,
        )
    refused = browser.client.get(
        urlsplit(url).path + "?" + urlsplit(url).query, follow_redirects=False
    )
    assert refused.status_code == 302
    assert "error=invalid_request" in refused.headers["location"]


def test_the_receipt_records_openid_with_its_purpose_like_any_scope(
    browser: Browser,
    client: TestClient[Litestar],
    native_app: Company,
    discovered: dict[str, Any],
    db_session: Session,
) -> None:
    with oauth_client(client, native_app) as oauth:
        sign_in(oauth, browser, discovered)
    db_session.rollback()
    receipt = db_session.exec(select(ConsentReceipt)).one()
    purposes = claims_in(receipt)["services"][0]["purposes"]
    assert {"purpose": "Sign you in", "categories": ["openid"]} in [
        {"purpose": p["purpose"], "categories": p["piiCategory"]} for p in purposes
    ]


def _silent_request(client: TestClient[Litestar], company: Company,
                    discovered: dict[str, Any]) -> str:
    """The path of an authorization request that may show the customer no page at all."""
    with oauth_client(client, company) as oauth:
        url, _state = oauth.create_authorization_url(
            discovered["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(16), prompt="none")
    return url.removeprefix(BASE_URL)


def _error_sent_back(response: Any) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == NATIVE_REDIRECT
    return parse_qs(location.query)["error"][0]


def test_prompt_none_sends_a_signed_out_customer_back_with_login_required(
    client: TestClient[Litestar], other_client: TestClient[Litestar], native_app: Company,
    discovered: dict[str, Any],
) -> None:
    response = other_client.get(_silent_request(client, native_app, discovered),
                                follow_redirects=False)
    assert _error_sent_back(response) == "login_required"


def test_prompt_none_never_shows_the_consent_screen_and_grants_nothing(
    browser: Browser, client: TestClient[Litestar], native_app: Company,
    discovered: dict[str, Any], db_session: Session,
) -> None:
    response = browser.client.get(_silent_request(client, native_app, discovered),
                                  follow_redirects=False)
    assert _error_sent_back(response) == "consent_required"
    assert db_session.exec(select(Grant)).all() == []
