"""RFC 9728: a client that only met a 401 finds the authorization server from the challenge."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import BASE_URL


def _resource_metadata(challenge: str) -> str:
    found = re.search(r'resource_metadata="([^"]+)"', challenge)
    assert found, challenge
    return found.group(1)


def test_a_401_names_the_metadata_that_names_the_authorization_server(
    client: TestClient[Litestar],
) -> None:
    refused = client.get(
        "/api/v1/subjects/someone/profile",
        params={"fields": "email", "purpose": "Send your order receipts"},
    )
    assert refused.status_code == 401
    described_at = _resource_metadata(refused.headers["www-authenticate"])

    resource = client.get(described_at).json()
    server = client.get(
        f"{resource['authorization_servers'][0]}/.well-known/oauth-authorization-server"
    ).json()

    # RFC 9728 §3.3: the resource is the one whose well-known path was asked for.
    assert described_at == f"{BASE_URL}/.well-known/oauth-protected-resource/api/v1"
    assert resource["resource"] == f"{BASE_URL}/api/v1"
    assert resource["bearer_methods_supported"] == ["header"]
    assert server["issuer"] == resource["authorization_servers"][0]
    assert server["token_endpoint"] == f"{BASE_URL}/oauth/token"


def test_an_unknown_token_is_refused_with_the_metadata_too(
    client: TestClient[Litestar],
) -> None:
    refused = client.get("/oauth/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert _resource_metadata(challenge).endswith("/.well-known/oauth-protected-resource/api/v1")


def test_the_vault_itself_has_resource_metadata_at_the_well_known_root(
    client: TestClient[Litestar],
) -> None:
    metadata = client.get("/.well-known/oauth-protected-resource").json()
    assert metadata["resource"] == BASE_URL
    assert metadata["authorization_servers"] == [BASE_URL]
    assert "openid" in metadata["scopes_supported"]
