"""OAuth endpoints: /oauth/authorize (the consent screen), token, revoke, introspect, metadata.

Handlers turn the Litestar request into authlib's (query for /authorize, form body for the
rest, read in an async dependency first), call `VaultAuthorizationServer`, and turn its answer
back. Errors that may not be redirected (unknown client, unregistered redirect URI) become an
error page with no Location header (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeAlias
from urllib.parse import parse_qsl, quote

import anyio.to_thread
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from cmr_vault.accounts.deps import provide_optional_account, session_token
from cmr_vault.accounts.models import Account, Role
from cmr_vault.accounts.service import signed_in_at
from cmr_vault.audit import service as audit_service
from cmr_vault.consent import service as consent_service
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.db.session import database_gate, read_aside
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import DomainError, ValidationFailed
from cmr_vault.i18n import gettext
from cmr_vault.intents import service as intents_service
from cmr_vault.oauth import authorization_details as rar
from cmr_vault.oauth import par
from cmr_vault.oauth.deps import basic_credentials
from cmr_vault.oauth.schemas import ServerMetadata
from cmr_vault.oauth.scopes import parse_scopes
from cmr_vault.oauth.server import (
    GrantHolder,
    OAuthResponse,
    Pairs,
    VaultAuthorizationServer,
    VaultClient,
    VaultRequest,
    metadata,
)
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from cmr_vault.web.admission import READ_GATE
from cmr_vault.web.error_pages import in_language

FormPairs: TypeAlias = NamedDependency[Pairs]
Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class FormBodyInvalid(Exception):
    """A token-endpoint body that is not a UTF-8 form: answered as RFC 6749 invalid_request."""


async def provide_form_pairs(request: Request[Any, Any, Any]) -> Pairs:
    """The urlencoded body as ordered pairs, duplicates kept (read before the sync handler)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormBodyInvalid("Send the parameters as application/x-www-form-urlencoded.")
    try:
        body = (await request.body()).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise FormBodyInvalid("The body is not UTF-8.") from None
    return parse_qsl(body, keep_blank_values=True)


def _server(db_session: Any, runtime: Runtime) -> VaultAuthorizationServer:
    return VaultAuthorizationServer(
        session=db_session,
        consent=runtime.consent_context(),
        issuer=runtime.settings.issuer,
        keyring=runtime.keyring,
    )


def _oauth_request(
    request: Request[Any, Any, Any], runtime: Runtime, params: Pairs
) -> VaultRequest:
    # The issuer, not the Host header, names our URL: behind a TLS proxy it is the https one.
    query = request.url.query
    uri = runtime.settings.issuer + request.url.path + (f"?{query}" if query else "")
    return VaultRequest(method=request.method, uri=uri, headers=request.headers, params=params)


def _to_litestar(answer: OAuthResponse, *, after_post: bool = False) -> Response[Any]:
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "location"}
    if answer.location:
        # 303 after a POST, never 307 (RFC 9700 §4.12).
        return Response(
            content=None,
            status_code=303 if after_post else 302,
            headers={**headers, "Location": answer.location},
        )
    body = answer.body if isinstance(answer.body, dict) else json.loads(answer.body or "{}")
    return Response(
        content=body,
        status_code=answer.status,
        media_type="application/json",
        headers={**headers, **NO_STORE},
    )


def _error_page(error: OAuth2Error | DomainError, account: Account | None,
                status: int = 400) -> Template:
    """The page for a link that cannot be answered by a redirect; it keeps the visitor's menu
    and shows authlib's English description only to those who read English."""
    detail = (error.get_error_description() or str(error.error)
              if isinstance(error, OAuth2Error) else error.detail)
    return Template("oauth/error.html", status_code=status,
                    context={"detail": in_language(detail), "account": account})


def _redirect_error(error: OAuth2Error, issuer: str, *, after_post: bool) -> Response[Any]:
    params = [*error.get_body(), ("iss", issuer)]
    return Response(
        content=None,
        status_code=303 if after_post else 302,
        headers={"Location": add_params_to_uri(error.redirect_uri, params)},
    )


def _is_visible_ascii(value: str) -> bool:
    # OAuth parameters are VSCHAR (RFC 6749 Appendix A); anything else is refused up front,
    # before it can reach a redirect or an error description.
    return all(32 <= ord(c) < 127 for c in value)


def _asks_for_no_screen(query: Pairs) -> bool:
    """An OpenID Connect request with `prompt=none`: no sign-in page, no consent screen."""
    values = dict(query)
    return ("openid" in values.get("scope", "").split()
            and "none" in values.get("prompt", "").split())


def _known_client_and_redirect(server: VaultAuthorizationServer, query: Pairs) -> bool:
    """Enough validation to know an error could be redirected (before asking anyone to sign in)."""
    values: dict[str, list[str]] = {}
    for key, value in query:
        values.setdefault(key, []).append(value)
    if any(len(values.get(k, [])) > 1 for k in ("client_id", "redirect_uri")):
        return False
    client = server.query_client(values.get("client_id", [""])[0])
    if client is None:
        return False
    uri = values.get("redirect_uri", [""])[0]
    return client.check_redirect_uri(uri) if uri else client.get_default_redirect_uri() is not None


class AuthorizationPages(Controller):
    """The authorization endpoint: validate, ask the customer, answer the company."""

    include_in_schema = False  # pages for people, not the machine API

    path = "/oauth/authorize"
    include_in_schema = False
    dependencies = {"account": Provide(provide_optional_account, sync_to_thread=True)}

    def _consent_page(
        self,
        request: Request[Any, Any, Any],
        oauth_request: VaultRequest,
        account: Account,
        db_session: Any,
        runtime: Runtime,
        problem: str = "",
        status: int = 200,
        data: dict[str, Any] | None = None,
    ) -> Template:
        """The consent screen: nothing ticked or chosen unless the customer did it (shown
        again after a problem, with their own choices kept)."""
        client: VaultClient = oauth_request.client
        details = getattr(oauth_request, "authorization_details", [])
        notice = json.loads(client.row.notice)
        notice.update(rar.purposes_by_scope(details, notice))
        scopes = parse_scopes(oauth_request.scope or "")
        value = intents_service.value_offer_for(
            db_session, client.row.client_id, request.query_params.get("value_offer", ""))
        signed_in_as = vault_service.read_fields(
            db_session, cipher=runtime.cipher, account_id=account.id, names=["email"]
        ).get("email", "")
        return Template(
            "oauth/consent.html",
            status_code=status,
            context={
                "account": account,
                "signed_in_as": signed_in_as,
                "company": client.row,
                "scopes": scopes,
                "notice": notice,
                "durations": consent_service.durations(
                    runtime.consent_context(), [s.name for s in scopes]),
                "chosen": _chosen_scopes(data or {}, [s.name for s in scopes]),
                "expiry": str((data or {}).get("expiry", "")),
                "value_offer": value,
                "action": f"{request.url.path}?{request.url.query}",
                "problem": problem,
                "details_end": rar.earliest_end(details, None),
            },
        )

    def _start(
        self,
        request: Request[Any, Any, Any],
        db_session: Any,
        runtime: Runtime,
        account: Account | None,
        *,
        after_post: bool,
    ) -> tuple[VaultAuthorizationServer, VaultRequest, Any] | Response[Any] | Template:
        server = _server(db_session, runtime)
        query = list(request.query_params.multi_items())
        if not all(_is_visible_ascii(key + value) for key, value in query):
            return _error_page(DomainError(
                gettext("The request contains characters OAuth does not allow.")), account)
        try:
            query, pushed_reference = par.resolve(db_session, clock=runtime.clock, query=query)
        except par.PushedRequestRefused as exc:
            return _error_page(exc, account)
        silent = _asks_for_no_screen(query)
        if account is None or account.role != Role.CUSTOMER:
            if not _known_client_and_redirect(server, query):
                return _error_page(DomainError(
                    gettext("The company or its return address is unknown.")), account)
            if account is not None:
                return _error_page(
                    DomainError(gettext("Only customers can grant access.")), account, 403)
            if not silent:
                target = quote(f"{request.url.path}?{request.url.query}", safe="")
                return Redirect(path=f"/signin?next={target}", status_code=303)
        oauth_request = _oauth_request(request, runtime, query)
        oauth_request.pushed_reference = pushed_reference
        try:
            # Signed out with prompt=none, authlib's OpenID Connect check answers login_required.
            grant = server.get_consent_grant(oauth_request, end_user=account)
            if silent:
                # The vault asks the customer every time: a request that may show no screen
                # can never be granted (OpenID Connect Core §3.1.2.6).
                raise ConsentRequiredError(redirect_uri=oauth_request.payload.redirect_uri)
        except OAuth2Error as error:
            if error.redirect_uri:
                return _redirect_error(error, runtime.settings.issuer, after_post=after_post)
            return _error_page(error, account)
        return server, oauth_request, grant

    @get("/", sync_to_thread=True)
    def show(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        runtime: RuntimeDep,
        account: NamedDependency[Account | None],
    ) -> Response[Any] | Template:
        """Validate the request, then show the consent screen."""
        started = self._start(request, db_session, runtime, account, after_post=False)
        if not isinstance(started, tuple):
            return started
        _, oauth_request, _ = started
        assert account is not None
        return self._consent_page(request, oauth_request, account, db_session, runtime)

    @post("/", status_code=303, sync_to_thread=True)
    def decide(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        runtime: RuntimeDep,
        account: NamedDependency[Account | None],
        data: Form,
    ) -> Response[Any] | Template:
        """Record the customer's choice and send them back to the company."""
        started = self._start(request, db_session, runtime, account, after_post=True)
        if not isinstance(started, tuple):
            return started
        server, oauth_request, grant = started
        assert account is not None
        client: VaultClient = oauth_request.client
        if data.get("decision") != "approve":
            _audit_denied(db_session, runtime, account, client)
            answer = server.create_authorization_response(
                oauth_request, grant_user=None, grant=grant
            )
            return _to_litestar(answer, after_post=True)
        requested = (oauth_request.scope or "").split()
        chosen = _chosen_scopes(data, requested)
        # The end shown on the screen, worked out for every requested scope: narrowing the
        # choice can only leave it as it is (the policy caps only ever shorten).
        duration = next((d for d in consent_service.durations(runtime.consent_context(), requested)
                         if d.key == data.get("expiry")), None)
        if duration is None:
            return self._consent_page(
                request, oauth_request, account, db_session, runtime,
                f"Choose how long {client.row.name} may have this, or deny the request.", 400,
                data)
        details = rar.approved(getattr(oauth_request, "authorization_details", []), chosen,
                               json.loads(client.row.notice))
        try:
            grant_row = consent_service.give_consent(
                db_session,
                runtime.consent_context(),
                account_id=account.id,
                client=client.row,
                scopes=chosen,
                expires_at=rar.earliest_end(details, duration.ends_at),
                purposes=rar.purposes_by_scope(details, json.loads(client.row.notice)),
                authorization_details=rar.to_json(details),
                value_offer=intents_service.value_offer_for(
                    db_session, client.row.client_id,
                    request.query_params.get("value_offer", "")),
            )
        except ValidationFailed as exc:
            return self._consent_page(request, oauth_request, account, db_session, runtime,
                                      exc.detail, 400, data)
        holder = GrantHolder(account.id, grant_row.id, " ".join(chosen), signed_in_at(
            db_session, clock=runtime.clock, token=session_token(request, runtime) or ""))
        answer = server.create_authorization_response(oauth_request, grant_user=holder, grant=grant)
        return _to_litestar(answer, after_post=True)


def _chosen_scopes(data: dict[str, Any], requested: list[str]) -> list[str]:
    raw = data.get("scope", [])
    picked = [raw] if isinstance(raw, str) else list(raw)
    return [s for s in requested if s in picked]


def _audit_denied(db_session: Any, runtime: Runtime, account: Account, client: VaultClient) -> None:
    subject = subject_pseudonym(runtime.keyring.pseudonym_key, account.id)
    audit_service.record(
        db_session,
        clock=runtime.clock,
        event=audit_service.AuditEvent(
            actor=f"customer:{subject}",
            action="consent.denied",
            subject=subject,
            resource=f"company:{client.get_client_id()}",
            outcome="denied",
        ),
    )


def _request_problem(request: Request[Any, Any, Any], form_pairs: Pairs) -> str | None:
    """What makes a token-endpoint request ambiguous, before authlib sees it (RFC 6749 §2.3,
    §3.2: one authentication method, and no parameter more than once)."""
    names = [name for name, _ in form_pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return f"Parameter sent more than once: {', '.join(repeated)}."
    basic = request.headers.get("authorization", "").lower().startswith("basic ")
    if basic and "client_secret" in names:
        return "Authenticate with the Authorization header or the body, not both."
    return None


def _invalid_request(description: str) -> Response[Any]:
    return Response(content={"error": "invalid_request", "error_description": description},
                    status_code=400, media_type="application/json", headers=NO_STORE)


class TokenEndpoints(Controller):
    """Token, revocation and introspection: machine endpoints, form in, JSON out."""

    path = "/oauth"
    tags = ["oauth"]
    dependencies = {"form_pairs": Provide(provide_form_pairs)}
    exception_handlers = {FormBodyInvalid: lambda _, exc: _invalid_request(str(exc))}
    # Described by the server metadata (RFC 8414), RFCs 6749, 7009 and 7662, and
    # docs/oauth-endpoints.openapi.yaml: their bodies are read as raw form pairs so that
    # repeated parameters can be refused, which Litestar's generated schema cannot say.
    include_in_schema = False

    @post("/token", sync_to_thread=True, status_code=200)
    def token(self, request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep,
              form_pairs: FormPairs) -> Response[Any]:
        """Exchange a code (with PKCE) or a refresh token for tokens (RFC 6749 §4.1.3, §6).

        Limited per client (or, before a client is named, per address): 429 with Retry-After.
        """
        runtime.rate_limits.token.hit(db_session, _caller(request, form_pairs), "token requests")
        return _answer(request, db_session, runtime, form_pairs, None)

    @post("/par", sync_to_thread=True, status_code=201)
    def pushed_authorization_request(self, request: Request[Any, Any, Any],
                                     db_session: DbSession, runtime: RuntimeDep,
                                     form_pairs: FormPairs) -> Response[Any]:
        """RFC 9126: store an authorization request pushed by its company; 201 with the
        `request_uri` to send the customer to /oauth/authorize with. Limited like /token."""
        runtime.rate_limits.token.hit(db_session, _caller(request, form_pairs),
                                      "pushed authorization requests")
        return _answer(request, db_session, runtime, form_pairs, par.ENDPOINT_NAME)

    @post("/revoke", sync_to_thread=True, status_code=200)
    def revoke(self, request: Request[Any, Any, Any], db_session: DbSession,
               runtime: RuntimeDep, form_pairs: FormPairs) -> Response[Any]:
        """RFC 7009: revoke a token and every token of its family."""
        return _answer(request, db_session, runtime, form_pairs, "revocation")

    @post("/introspect", status_code=200, opt={READ_GATE: True})
    async def introspect(self, request: Request[Any, Any, Any], runtime: RuntimeDep,
                         form_pairs: FormPairs) -> Response[Any]:
        """RFC 7662: whether one of the caller's own tokens is active, and what it allows.

        It changes nothing, so it runs on a read-only connection (no write lock, no turn behind
        writers) in one worker thread: client, token and grant are read where they are.
        """
        gate = database_gate(request.app.state, read_only=True)
        await gate.enter()
        try:
            return await anyio.to_thread.run_sync(_introspect, request, runtime, form_pairs)
        finally:
            gate.leave()


def _introspect(request: Request[Any, Any, Any], runtime: Runtime, form_pairs: Pairs
                ) -> Response[Any]:
    with read_aside(runtime.engine) as session:
        return _answer(request, session, runtime, form_pairs, "introspection")


def _caller(request: Request[Any, Any, Any], form_pairs: Pairs) -> str:
    """Who is asking, for rate limiting: the client id it names, else its address."""
    credentials = basic_credentials(request.headers.get("authorization", ""))
    named = credentials[0] if credentials else dict(form_pairs).get("client_id", "")
    if named:
        return f"client:{named[:64]}"
    return f"address:{request.client.host if request.client else 'unknown'}"


def _answer(request: Request[Any, Any, Any], db_session: Any, runtime: Runtime,
            form_pairs: Pairs, endpoint: str | None) -> Response[Any]:
    """Run one machine endpoint: the token endpoint (None) or a named authlib endpoint."""
    if problem := _request_problem(request, form_pairs):
        return _invalid_request(problem)
    server = _server(db_session, runtime)
    oauth_request = _oauth_request(request, runtime, form_pairs)
    if endpoint is None:
        return _to_litestar(server.create_token_response(oauth_request))
    return _to_litestar(server.create_endpoint_response(endpoint, oauth_request))


@get("/.well-known/oauth-authorization-server", sync_to_thread=False, tags=["oauth"])
def server_metadata(runtime: RuntimeDep) -> ServerMetadata:
    """RFC 8414 authorization server metadata."""
    return metadata(runtime.settings.issuer)
