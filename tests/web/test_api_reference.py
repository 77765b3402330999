"""The API reference at /schema: a page that works with no outside network."""

from __future__ import annotations

import base64
import hashlib
import re

from litestar import Litestar
from litestar.testing import TestClient


def test_the_reference_page_loads_everything_from_the_vault(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/schema", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    assert not [s for s in sources if not s.startswith("/")]  # no CDN, no other origin
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.content) > 1000


def test_the_pages_policy_allows_its_own_start_up_script_and_nothing_inline_else(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/schema")
    inline = re.findall(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.content, re.S)
    policy = page.headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert len(inline) == 1
    assert script_src.split() == ["script-src", "'self'", f"'sha256-{digest}'"]
    assert "frame-ancestors 'none'" in policy


def test_the_schema_documents_stay_where_clients_find_them(
    client: TestClient[Litestar],
) -> None:
    document = client.get("/schema/openapi.json")
    assert document.json()["info"]["title"] == "CMR Vault API"
    assert "openapi: 3.1.0" in client.get("/schema/openapi.yaml").text
    # Pages other than the reference keep the strict policy with no script at all.
    assert "script-src" not in client.get("/schema/openapi.json").headers["content-security-policy"]


# Typed on their own branch (fix/tlog) with the proofs they return.
TYPED_ELSEWHERE = "/api/v1/audit/"


def test_every_json_answer_has_a_typed_schema(client: TestClient[Litestar]) -> None:
    document = client.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    untyped = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if not status.startswith("2") or schema is None or path.startswith(
                        TYPED_ELSEWHERE):
                    continue
                named = [s["$ref"] for s in schema.get("oneOf", [schema]) if "$ref" in s]
                if not named or not all(
                        schemas[ref.split("/")[-1]].get("properties") for ref in named):
                    untyped.append(f"{method.upper()} {path} {status}")
    assert untyped == []
