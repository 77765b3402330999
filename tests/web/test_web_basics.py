"""The web layer's promises: health, OpenAPI, problem documents, pages, headers."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient


def test_health_answers_with_database_reachable(client: TestClient[Litestar]) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_probes_get_no_form_cookie(client: TestClient[Litestar]) -> None:
    """A load balancer or Prometheus never submits a form: no CSRF cookie for them to keep."""
    for path in ("/health", "/metrics"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "set-cookie" not in response.headers, path


def test_openapi_document_is_served_at_schema(client: TestClient[Litestar]) -> None:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "CMR Vault API"


def test_unknown_api_path_is_an_rfc9457_problem(client: TestClient[Litestar]) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["instance"] == "/api/v1/nothing-here"


def test_unknown_page_is_a_friendly_html_page(client: TestClient[Litestar]) -> None:
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Back to the start page" in response.text


def test_every_page_carries_strict_security_headers(client: TestClient[Litestar]) -> None:
    response = client.get("/signin")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_pages_load_nothing_from_other_origins(client: TestClient[Litestar]) -> None:
    for page in ("/", "/signin", "/signup"):
        html = client.get(page).text
        assert "http://" not in html.replace("http://127.0.0.1:8000", "")
        assert "https://" not in html
        assert "<script" not in html
