"""A company's OpenID Connect client: authlib's OAuth2Session, joserfc for the id_token.

`InProcess` only carries the session's requests to the in-process app; everything the protocol
does (PKCE, nonce, the token request, validating the id_token against the published keys) is
the libraries' own code.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import BASE_URL, ClockUnderTest
from tests.factories import Browser
from tests.oauth.flows import Company, consent

NATIVE_REDIRECT = "http://127.0.0.1/callback"
SCOPE = "openid profile.email:read"


class InProcess(requests.adapters.BaseAdapter):
    """Carries a requests session's calls to the in-process app (the wire, nothing more)."""

    def __init__(self, client: TestClient[Litestar]) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        answer = self.client.request(
            str(request.method),
            str(request.url),
            headers=dict(request.headers),
            content=request.body,
            follow_redirects=False,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(answer.headers)
        response._content = answer.content
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release: the app's client is the test's."""


def oauth_client(
    client: TestClient[Litestar], company: Company, redirect_uri: str = NATIVE_REDIRECT
) -> OAuth2Session:
    """authlib's requests client, talking to the in-process app."""
    session = OAuth2Session(
        client_id=company.client_id,
        client_secret=company.secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if company.secret else "none",
    )
    session.mount(BASE_URL, InProcess(client))
    return session


def sign_in(
    oauth: OAuth2Session, browser: Browser, discovered: dict[str, Any], **consent_choices: Any
) -> tuple[dict[str, Any], str]:
    """The whole code flow as a company runs it: (token response, nonce)."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, _state = oauth.create_authorization_url(
        discovered["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    answer = consent(browser, urlsplit(url).query, **consent_choices)
    assert answer.status_code == 303, answer.text
    token = oauth.fetch_token(
        discovered["token_endpoint"],
        authorization_response=answer.headers["location"],
        code_verifier=verifier,
    )
    return dict(token), nonce


def validated_id_token(
    oauth: OAuth2Session,
    discovered: dict[str, Any],
    token: dict[str, Any],
    nonce: str,
    clock: ClockUnderTest,
) -> dict[str, Any]:
    """Validate as a relying party does: signature against jwks_uri, then the claims."""
    key_set = KeySet.import_key_set(oauth.get(discovered["jwks_uri"], withhold_token=True).json())
    decoded = jwt.decode(
        token["id_token"], key_set, algorithms=discovered["id_token_signing_alg_values_supported"]
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        options={
            "iss": {"essential": True, "value": discovered["issuer"]},
            "aud": {"essential": True, "value": oauth.client_id},
            "nonce": {"essential": True, "value": nonce},
            "auth_time": {"essential": True},
        },
        params={"nonce": nonce, "access_token": token["access_token"]},
    )
    claims.validate(now=int(clock.now().timestamp()))
    return dict(decoded.claims)
