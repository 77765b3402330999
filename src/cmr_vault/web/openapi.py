"""The OpenAPI document: who may call what, and request bodies exactly as they are validated.

Two things Litestar's generator cannot say on its own:

- Which credentials each part of the API takes. Controllers name a security requirement from
  here; the schemes are declared once, so a client (or schemathesis' `ignored_auth` check) knows
  a company authenticates with HTTP Basic client credentials here and a bearer token there.
- The exact shape of a body. Litestar renders a pydantic model field by field and loses some
  constraints on the way (a string's `pattern`; a `dict` with a size limit comes out as an
  array). A client that trusts the document would then send bodies the vault refuses. Request
  bodies are therefore described by pydantic's own JSON Schema, the one validation uses.

The reference pages at `/schema` are Litestar's own Swagger UI renderer, its scripts and styles
served by the vault from the installed `swagger-ui-py` package (no CDN: the vault may have no
outside network, and its CSP allows only its own origin). The page starts Swagger UI with one
inline script, which the page's CSP allows by its hash alone.

It also carries OpenAPI links: which answer names the resource the next call takes (a push's
`message_id`, a grant's `grant_id`). Clients and generators follow them; schemathesis' stateful
phase uses them to walk create -> read -> delete -> read sequences.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, Response, Router
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from pydantic import BaseModel

from cmr_vault.settings import Settings

COMPANY_CLIENT: list[dict[str, list[str]]] = [{"companyClient": []}]
ACCESS_TOKEN: list[dict[str, list[str]]] = [{"accessToken": []}]
OPERATOR_TOKEN: list[dict[str, list[str]]] = [{"operatorToken": []}]
AUDITOR_SESSION: list[dict[str, list[str]]] = [{"auditorSession": []}]


def components(settings: Settings) -> Components:
    """The security schemes the API's parts name."""
    session_cookie = "__Host-cmr_session" if settings.secure_cookies else "cmr_session"
    return Components(security_schemes={
        "companyClient": SecurityScheme(
            type="http", scheme="basic",
            description="The company's OAuth client_id and client_secret."),
        "accessToken": SecurityScheme(
            type="http", scheme="bearer",
            description="An access token from /oauth/token: one customer's grant."),
        "operatorToken": SecurityScheme(
            type="http", scheme="bearer",
            description="The operator token whose SHA-256 is CMR_VAULT_ADMIN_TOKEN_SHA256."),
        "auditorSession": SecurityScheme(
            type="apiKey", security_scheme_in="cookie", name=session_cookie,
            description="An auditor's signed-in session (sign in at /signin)."),
    })


@dataclass(frozen=True)
class Link:
    """An answer of `source` names a value that `target` takes as its parameter."""

    source: tuple[str, str, str]  # method, path, status
    target: tuple[str, str]  # method, path
    parameters: dict[str, str]


def _links() -> list[Link]:
    grant = "/api/v1/grants/{grant_id}"
    first_grant = {"grant_id": "$response.body#/grants/0/grant_id"}
    same_grant = {"grant_id": "$request.path.grant_id"}
    return [
        Link(("get", "/api/v1/grants", "200"), ("get", grant), first_grant),
        Link(("get", "/api/v1/grants", "200"), ("delete", grant), first_grant),
        Link(("get", "/api/v1/grants", "200"), ("post", f"{grant}/value-fulfilled"), first_grant),
        Link(("get", "/api/v1/grants", "200"), ("get", "/api/v1/subjects/{subject}/profile"),
             {"subject": "$response.body#/grants/0/subject"}),
        Link(("delete", grant, "200"), ("get", grant), same_grant),
        Link(("delete", grant, "200"), ("post", f"{grant}/value-fulfilled"), same_grant),
        Link(("post", "/api/v1/pushes", "202"), ("get", "/api/v1/pushes/{message_id}"),
             {"message_id": "$response.body#/message_id"}),
        Link(("post", "/api/v1/campaigns", "202"), ("get", "/api/v1/campaigns/{campaign_id}"),
             {"campaign_id": "$response.body#/campaign_id"}),
        Link(("post", "/api/v1/campaigns", "202"),
             ("get", "/api/v1/campaigns/{campaign_id}/results"),
             {"campaign_id": "$response.body#/campaign_id"}),
        Link(("post", "/api/v1/programmes", "201"),
             ("post", "/api/v1/programmes/{programme_id}/invitations"),
             {"programme_id": "$response.body#/programme_id"}),
        Link(("get", "/api/v1/intents", "200"), ("post", "/api/v1/intents/{intent_id}/offers"),
             {"intent_id": "$response.body#/intents/0/intent_id"}),
        Link(("get", "/api/v1/events", "200"), ("post", "/api/v1/events/{event_id}/ack"),
             {"event_id": "$response.body#/events/0/id"}),
        Link(("post", "/api/v1/admin/clients", "201"),
             ("post", "/api/v1/admin/clients/{client_id}/status"),
             {"client_id": "$response.body#/client_id"}),
        Link(("get", "/api/v1/audit/checkpoints/latest", "200"),
             ("get", "/api/v1/audit/checkpoints/{size}"), {"size": "$response.body#/tree_size"}),
    ]


def _pointer(method: str, path: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _add_links(document: dict[str, Any]) -> None:
    paths = document.get("paths", {})
    for link in _links():
        (method, path, status), (target_method, target_path) = link.source, link.target
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None or target_method not in paths.get(target_path, {}):
            raise LookupError(f"OpenAPI link {link} names an operation the API does not have")
        name = f"{target_method}{target_path}".replace("/", "_").replace("{", "").replace("}", "")
        response.setdefault("links", {})[name] = {
            "operationRef": _pointer(target_method, target_path), "parameters": link.parameters}


def _body_models(app: Litestar) -> dict[tuple[str, str], type[BaseModel]]:
    """(path, method) -> the pydantic model of the JSON body the handler validates."""
    found = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            model = data.annotation if data is not None else None
            if isinstance(model, type) and issubclass(model, BaseModel):
                for method in handler.http_methods:
                    found[(route.path_format, method.lower())] = model
    return found


def _faithful_bodies(app: Litestar, document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for (path, method), model in _body_models(app).items():
        operation = document.get("paths", {}).get(path, {}).get(method)
        if not operation or "requestBody" not in operation:
            continue
        exact = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(exact.pop("$defs", {}))
        schemas[model.__name__] = exact
        for media in operation["requestBody"].get("content", {}).values():
            media["schema"] = {"$ref": f"#/components/schemas/{model.__name__}"}


def _render_faithfully(base: type[Any]) -> type[Any]:
    class Faithful(base):  # type: ignore[misc, valid-type]
        def render(self, request: Any, openapi_schema: dict[str, Any]) -> bytes:
            _faithful_bodies(request.app, openapi_schema)  # idempotent on the cached document
            _add_links(openapi_schema)
            return bytes(super().render(request, openapi_schema))

    Faithful.__name__ = f"Faithful{base.__name__}"
    return Faithful


FaithfulJsonRender = _render_faithfully(JsonRenderPlugin)
FaithfulYamlRender = _render_faithfully(YamlRenderPlugin)


FaithfulSwaggerRender = _render_faithfully(SwaggerRenderPlugin)
DOCS_PATH = "/schema"
ASSETS = "/static/api-docs"
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL)


def swagger_ui_files() -> Path:
    """Where the installed swagger-ui-py package keeps Swagger UI's built files."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: the API reference has no assets")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def reference_page() -> SwaggerRenderPlugin:
    """Swagger UI at /schema, every asset from the vault itself."""
    return FaithfulSwaggerRender(
        js_url=f"{ASSETS}/swagger-ui-bundle.js", css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon="", path=["/", "/swagger"])


def _page_policy(response: Response[Any]) -> Response[Any]:
    """The docs pages' CSP: scripts from the vault and the page's own inline start-up script
    (by its hash); Swagger UI sets inline styles, and its "try it out" calls the vault."""
    body = response.content if isinstance(response.content, bytes) else b""
    scripts = [m.group(1) for m in INLINE_SCRIPT.finditer(body)]
    if not scripts:
        return response
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
                      for s in scripts)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'; form-action 'none'")
    return response


def docs_router() -> Router:
    """The router Litestar fills with the schema documents and the reference page."""
    return Router(DOCS_PATH, route_handlers=[], include_in_schema=False,
                  after_request=_page_policy)


def docs_assets_router() -> Router:
    """Swagger UI's scripts and styles, cacheable like the vault's other static files."""
    return create_static_files_router(path=ASSETS, directories=[swagger_ui_files()],
                                      include_in_schema=False)
