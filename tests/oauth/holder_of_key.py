"""What a company holding a DPoP key does (RFC 9449), built with joserfc rather than the vault's
own code, and a bridge that lets requests-based OAuth clients talk to the in-process app."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jws
from joserfc.jwk import ECKey
from litestar import Litestar
from litestar.testing import TestClient
from requests.structures import CaseInsensitiveDict

from tests.conftest import BASE_URL, FrozenClock


@dataclass
class DPoPHolder:
    """A company's DPoP key pair and the proofs it signs; `clock` gives `iat` in test time."""

    clock: FrozenClock
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    nonce: str | None = None

    @property
    def jkt(self) -> str:
        """The key's RFC 7638 thumbprint, as `cnf.jkt` names it."""
        return str(self.key.thumbprint())

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A signed proof for one request; `header`, `claims` and `drop` make bad ones."""
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(self.clock.now().timestamp()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode()).digest()
            body["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if self.nonce is not None:
            body["nonce"] = self.nonce
        body.update(claims or {})
        protected = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        protected.update(header or {})
        for name in drop:
            body.pop(name, None)
            protected.pop(name, None)
        return jws.serialize_compact(
            protected, json.dumps(body).encode(), self.key, algorithms=["ES256"]
        )


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A requests transport that hands each request to the Litestar test client."""

    def __init__(self, client: TestClient[Litestar]) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:  # type: ignore[override]
        answer = self.client.request(
            str(request.method),
            str(request.url),
            headers=dict(request.headers),
            content=request.body,
            follow_redirects=False,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.content
        response.encoding = "utf-8"
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release: the test client belongs to the fixture."""


def requests_session(client: TestClient[Litestar]) -> requests.Session:
    """A requests session whose calls to the vault go to the in-process app."""
    session = requests.Session()
    session.mount(BASE_URL, InProcessAdapter(client))
    return session
