"""Drive the OAuth flow the way a company and a customer's browser do."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.runtime import Runtime
from tests.factories import CSRF_FIELD, Browser

REDIRECT_URI = "https://shop.example/cb"
SCOPES = {
    "profile.email:read": ["Send your order receipts"],
    "profile.given_name:read": ["Address you by name"],
    "marketing.email": ["Tell you about sales"],
}


@dataclass
class Company:
    """A registered company and its credentials."""

    row: OAuthClient
    secret: str | None

    @property
    def client_id(self) -> str:
        return self.row.client_id

    def auth(self) -> dict[str, str]:
        """HTTP Basic credentials (RFC 6749 §2.3.1), or nothing for a public client."""
        if self.secret is None:
            return {}
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def form(self) -> dict[str, str]:
        """The client_id a public client sends in the body instead."""
        return {"client_id": self.client_id} if self.secret is None else {}


def register_company(
    session: Session, runtime: Runtime, *, name: str | None = None, public: bool = False,
    redirect_uris: list[str] | None = None, notice: dict[str, list[str]] | None = None,
) -> Company:
    """A committed, approved company."""
    row, secret = oauth_service.register_client(
        session, clock=runtime.clock,
        registration=oauth_service.ClientRegistration(
            name=name or f"Shop {secrets.token_hex(3)}", description="A shop.",
            homepage="https://shop.example", privacy_policy_url="https://shop.example/privacy",
            redirect_uris=redirect_uris or [REDIRECT_URI], notice=notice or SCOPES,
            public=public,
        ),
    )
    session.commit()
    return Company(row, secret)


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_query(company: Company, *, challenge: str, scope: str | None = None,
                    **overrides: Any) -> str:
    """The query string of an authorization request (override or drop any parameter)."""
    params: dict[str, Any] = {
        "response_type": "code", "client_id": company.client_id, "redirect_uri": REDIRECT_URI,
        "scope": scope or " ".join(SCOPES), "state": "st-123", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)


def redirect_params(response: Any) -> dict[str, str]:
    """The query parameters of a redirect back to the company."""
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def consent(browser: Browser, query: str, *, decision: str = "approve",
            scopes: list[str] | None = None, expiry: str = "1y") -> Any:
    """Open the consent screen and submit it; returns the redirect response."""
    page = browser.client.get(f"/oauth/authorize?{query}")
    assert page.status_code == 200, page.text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    chosen = scopes if scopes is not None else re.findall(r'name="scope" value="([^"]+)"',
                                                           page.text)
    return browser.client.post(
        f"/oauth/authorize?{query}",
        data={CSRF_FIELD: token.group(1), "decision": decision, "scope": chosen,
              "expiry": expiry},
        follow_redirects=False,
    )


def get_code(browser: Browser, company: Company, *, scopes: list[str] | None = None,
             scope: str | None = None, expiry: str = "1y") -> tuple[str, str]:
    """(code, verifier) after the customer approves."""
    verifier, challenge = pkce_pair()
    response = consent(browser, authorize_query(company, challenge=challenge, scope=scope),
                       scopes=scopes, expiry=expiry)
    assert response.status_code == 303, response.text
    params = redirect_params(response)
    assert "code" in params, params
    return params["code"], verifier


def redeem(client: TestClient[Litestar], company: Company, code: str, verifier: str,
           **extra: str) -> Any:
    """POST the code to the token endpoint."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, **company.form(), **extra}
    return client.post("/oauth/token", data=data, headers=company.auth())


def refresh(client: TestClient[Litestar], company: Company, refresh_token: str,
            **extra: str) -> Any:
    """POST a refresh token to the token endpoint."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **company.form(),
            **extra}
    return client.post("/oauth/token", data=data, headers=company.auth())


def introspect(client: TestClient[Litestar], company: Company, token: str) -> dict[str, Any]:
    """What the introspection endpoint says of a token, asked by its company."""
    response = client.post("/oauth/introspect", data={"token": token}, headers=company.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())
