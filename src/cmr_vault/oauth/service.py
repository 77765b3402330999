"""Companies, authorization codes and tokens: registration, lookup, spending and revocation.

Nothing here speaks HTTP or OAuth wire formats; `oauth.server` adapts authlib to these calls.
Codes are spent with one conditional UPDATE, so of many concurrent redemptions exactly one wins
on SQLite (BEGIN IMMEDIATE) and PostgreSQL (row lock) alike.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Connection, Table, bindparam, update
from sqlmodel import Session, SQLModel, col, select

from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.consent.models import Grant
from cmr_vault.crypto.blind_index import blind_index
from cmr_vault.errors import Conflict, Forbidden, NotFound, ValidationFailed
from cmr_vault.oauth.models import AuthorizationCode, ClientStatus, OAuthClient, OAuthToken
from cmr_vault.oauth.scopes import parse_scopes

CODE_LIFETIME = timedelta(seconds=60)
ACCESS_LIFETIME = timedelta(minutes=5)
REFRESH_LIFETIME = timedelta(days=30)
LOOPBACK_HOSTS = {"127.0.0.1", "[::1]", "::1"}
ID_TOKEN_ALGORITHMS = ("RS256", "ES256", "EdDSA")


def secret_hash(value: str) -> str:
    """The stored form of a client secret, code or token (all long random strings)."""
    return hashlib.sha256(value.encode()).hexdigest()


def pairwise_subject(pseudonym_key: bytes, sector: str, account_id: str) -> str:
    """The company's own stable name for a customer; two sectors' names cannot be joined."""
    return blind_index(pseudonym_key, "pairwise-subject", f"{sector}\x00{account_id}")[:40]


def sector_of(client: OAuthClient) -> str:
    """Whose names a company shares (OpenID Connect Core §8.1): by default its registration
    alone, so companies behind one redirect host (a platform's callback, or 127.0.0.1 for every
    native app) never see one name for a customer; with a verified sector_identifier_uri, every
    registration that host's document lists (a company's web and native apps)."""
    return f"sector:{client.sector_identifier}" if client.sector_identifier else client.client_id


def subject_for(pseudonym_key: bytes, client: OAuthClient, account_id: str) -> str:
    """The pairwise subject (`sub`) a company knows a customer by."""
    return pairwise_subject(pseudonym_key, sector_of(client), account_id)


@dataclass(frozen=True)
class ClientRegistration:
    """What the operator states about a company when registering it."""

    name: str
    description: str
    homepage: str
    privacy_policy_url: str
    redirect_uris: list[str]
    notice: dict[str, list[str]]  # scope -> purposes declared for it
    public: bool = False
    require_par: bool = False  # only pushed authorization requests (RFC 9126)
    require_dpop: bool = False  # only DPoP-bound tokens (RFC 9449)
    # OpenID Connect Registration §2: the sector's host, once `oauth.sectors` checked that the
    # sector_identifier_uri's document lists every redirect URI; the id_token algorithm.
    sector_identifier: str | None = None
    id_token_alg: str | None = None


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: str, *, public: bool) -> str | None:
    """Why `uri` cannot be registered (RFC 9700 §2.1, RFC 8252 §7), or None when it can."""
    if uri != uri.strip() or any(ord(c) < 33 or ord(c) == 127 for c in uri):
        return "has whitespace or control characters"
    if '"' in uri or "\\" in uri:
        return "has a quote or backslash, which a URI may not contain (RFC 3986)"
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "has a fragment"
    if parts.username is not None or "@" in parts.netloc:
        return "has a user-info part"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return None if public else "plain http is for native apps on a loopback address only"
    if parts.scheme not in ("http", "https") and "." in parts.scheme and public:
        return None  # a private-use scheme in reverse-domain form (RFC 8252 §7.1)
    return "must be https (or, for a native app, http on 127.0.0.1 or a reverse-domain scheme)"


def redirect_uri_matches(registered: str, requested: str, *, public: bool) -> bool:
    """Exact string match; a native app's loopback URI may differ in port only (RFC 8252 §7.3)."""
    if hmac.compare_digest(registered.encode(), requested.encode()):
        return True
    reg, req = urlsplit(registered), urlsplit(requested)
    return (
        public
        and reg.scheme == req.scheme == "http"
        and _is_loopback(reg.hostname)
        and reg.hostname == req.hostname
        and reg.path == req.path
        and reg.query == req.query
        and req.username is None
        and not req.fragment
        and "@" not in req.netloc
        and req.port is not None
    )


def _validate_registration(reg: ClientRegistration) -> None:
    problems: dict[str, str] = {}
    if not reg.name.strip() or len(reg.name) > 120:
        problems["name"] = "a name of 1 to 120 characters is required"
    for key, url in (("homepage", reg.homepage), ("privacy_policy_url", reg.privacy_policy_url)):
        if urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
            problems[key] = "must be an https URL"
    if not reg.redirect_uris:
        problems["redirect_uris"] = "at least one redirect URI is required"
    for uri in reg.redirect_uris:
        why = check_redirect_uri(uri, public=reg.public)
        if why:
            problems["redirect_uris"] = f"{uri!r} {why}"
    try:
        parse_scopes(list(reg.notice))
    except ValidationFailed as exc:
        problems["scopes"] = exc.problems["scope"]
    if not reg.notice:
        problems["scopes"] = "declare at least one scope and its purposes"
    for scope, purposes in reg.notice.items():
        if not purposes or any(not p.strip() or len(p) > 200 for p in purposes):
            problems[f"purposes[{scope}]"] = "declare 1 or more purposes of up to 200 characters"
    if reg.id_token_alg is not None and reg.id_token_alg not in ID_TOKEN_ALGORITHMS:
        problems["id_token_signed_response_alg"] = f"one of {', '.join(ID_TOKEN_ALGORITHMS)}"
    if problems:
        raise ValidationFailed("The registration is not valid.", problems=problems)


def register_client(
    session: Session, *, clock: Clock, registration: ClientRegistration, approved: bool = True
) -> tuple[OAuthClient, str | None]:
    """Register a company; returns it and its secret (None for a public client), shown once."""
    _validate_registration(registration)
    ensure_unique_name(session, registration.name)
    secret = None if registration.public else secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id="c_" + secrets.token_urlsafe(18),
        name=registration.name.strip(),
        description=registration.description.strip(),
        homepage=registration.homepage,
        privacy_policy_url=registration.privacy_policy_url,
        redirect_uris=json.dumps(registration.redirect_uris),
        allowed_scopes=json.dumps(list(registration.notice)),
        notice=json.dumps(registration.notice),
        secret_hash=secret_hash(secret) if secret else None,
        require_par=registration.require_par,
        require_dpop=registration.require_dpop,
        status=ClientStatus.APPROVED if approved else ClientStatus.PENDING,
        created_at=clock.now(),
        sector_identifier=registration.sector_identifier,
        id_token_alg=registration.id_token_alg,
    )
    session.add(client)
    session.flush()
    return client, secret


def get_client(session: Session, client_id: str) -> OAuthClient:
    """A registered company, or NotFound."""
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise NotFound(f"No company is registered as {client_id!r}.")
    return client


def list_clients(session: Session) -> list[OAuthClient]:
    """Every registered company, oldest first."""
    return list(session.exec(select(OAuthClient).order_by(col(OAuthClient.created_at))).all())


def approved_clients(session: Session) -> list[OAuthClient]:
    """Companies in good standing, by name."""
    return [c for c in list_clients(session) if c.status == ClientStatus.APPROVED]


def client_asking(session: Session, target: str) -> OAuthClient | None:
    """The approved company whose authorization request `target` (a same-site path) is.

    The sign-in and sign-up pages name it, so a customer arriving from a company's link knows
    who is asking before they give their password.
    """
    parts = urlsplit(target)
    client_ids = parse_qs(parts.query).get("client_id", [])
    if parts.path.rstrip("/") != "/oauth/authorize" or len(client_ids) != 1:
        return None
    client = session.get(OAuthClient, client_ids[0])
    return client if client is not None and client.status == ClientStatus.APPROVED else None


def set_client_status(session: Session, *, client_id: str, status: ClientStatus) -> OAuthClient:
    """Approve or suspend a company; a suspended company's tokens stop working at once."""
    client = get_client(session, client_id)
    client.status = status
    session.add(client)
    session.flush()
    return client


def set_client_requirements(session: Session, *, client_id: str, require_par: bool | None,
                            require_dpop: bool | None) -> OAuthClient:
    """Hold a company to PAR or DPoP, or release it (None leaves a setting as it is).

    Takes effect on the company's next request: a flow it starts without PAR, or a token
    request without a DPoP proof, is refused from then on. Tokens already issued keep the
    binding they were issued with.
    """
    client = get_client(session, client_id)
    if require_par is not None:
        client.require_par = require_par
    if require_dpop is not None:
        client.require_dpop = require_dpop
    session.add(client)
    session.flush()
    return client


def client_secret_matches(client: OAuthClient, secret: str) -> bool:
    """Constant-time check of a presented client secret against its stored hash."""
    if client.secret_hash is None:
        return False
    return hmac.compare_digest(client.secret_hash, secret_hash(secret))


def save_code(
    session: Session,
    *,
    clock: Clock,
    code: str,
    client_id: str,
    grant_id: str,
    redirect_uri: str,
    scope: str,
    code_challenge: str,
    code_challenge_method: str,
    dpop_jkt: str | None = None,
    nonce: str | None = None,
    auth_time: datetime | None = None,
) -> None:
    """Store a freshly issued code (hashed), valid for CODE_LIFETIME, with what an id_token
    issued for it must say (OpenID Connect's nonce, the customer's sign-in time)."""
    session.add(
        AuthorizationCode(
            code_hash=secret_hash(code),
            client_id=client_id,
            grant_id=grant_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            dpop_jkt=dpop_jkt,
            expires_at=clock.now() + CODE_LIFETIME,
            nonce=nonce,
            auth_time=auth_time,
        )
    )
    session.flush()


def find_code(
    session: Session, *, clock: Clock, code: str, client_id: str
) -> AuthorizationCode | None:
    """An unexpired code issued to this client (spent or not: spending is checked later)."""
    row = session.get(AuthorizationCode, secret_hash(code))
    if row is None or row.client_id != client_id or row.expires_at <= clock.now():
        return None
    return row


def nonce_was_used(session: Session, *, client_id: str, nonce: str) -> bool:
    """Whether a code was already issued to this company for this nonce (a replayed request)."""
    return session.exec(select(AuthorizationCode.code_hash).where(
        AuthorizationCode.client_id == client_id, AuthorizationCode.nonce == nonce)).first() \
        is not None


def spend_code(session: Session, *, clock: Clock, code: AuthorizationCode) -> bool:
    """Mark a code used; True for the one caller that spent it, False for every replay."""
    result = session.execute(
        update(AuthorizationCode)
        .where(col(AuthorizationCode.code_hash) == code.code_hash)
        .where(col(AuthorizationCode.used_at).is_(None))
        .values(used_at=clock.now())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def save_token(
    session: Session,
    *,
    clock: Clock,
    access_token: str,
    refresh_token: str | None,
    client_id: str,
    grant_id: str,
    family: str,
    scope: str,
    refresh_scope: str,
    dpop_jkt: str | None = None,
    authorization_details: str | None = None,
) -> OAuthToken:
    """Store an access token (and its refresh token), hashed; bound to a DPoP key if given."""
    now = clock.now()
    token = OAuthToken(
        id=secrets.token_hex(16),
        access_hash=secret_hash(access_token),
        refresh_hash=secret_hash(refresh_token) if refresh_token else None,
        client_id=client_id,
        grant_id=grant_id,
        family=family,
        scope=scope,
        refresh_scope=refresh_scope,
        issued_at=now,
        access_expires_at=now + ACCESS_LIFETIME,
        refresh_expires_at=now + REFRESH_LIFETIME if refresh_token else None,
        dpop_jkt=dpop_jkt,
        authorization_details=authorization_details,
    )
    session.add(token)
    session.flush()
    return token


def find_access_token(session: Session, access_token: str) -> OAuthToken | None:
    """The token row for a presented access token, whatever its state."""
    return session.exec(
        select(OAuthToken).where(OAuthToken.access_hash == secret_hash(access_token))
    ).first()


_TOKEN: Table = OAuthToken.__table__  # type: ignore[attr-defined]
_GRANT: Table = Grant.__table__  # type: ignore[attr-defined]
_CLIENT: Table = OAuthClient.__table__  # type: ignore[attr-defined]
_M = TypeVar("_M", bound=SQLModel)
_BEARER_QUERY = (
    select(*_TOKEN.c, *_GRANT.c, *_CLIENT.c)
    .select_from(_TOKEN.join(_GRANT, _GRANT.c.id == _TOKEN.c.grant_id)
                 .join(_CLIENT, _CLIENT.c.client_id == _TOKEN.c.client_id))
    .where(_TOKEN.c.access_hash == bindparam("access_hash"))
)


def _detached(model: type[_M], table: Table, values: tuple[object, ...]) -> _M:
    return model.model_construct(**dict(zip(table.c.keys(), values, strict=True)))


def find_bearer(
    connection: Connection, access_token: str
) -> tuple[OAuthToken, Grant, OAuthClient] | None:
    """A presented access token with its grant and its company, whatever their states.

    One statement on SQLAlchemy Core, because every company request starts here: the ORM's
    three loads were a third of a read's cost. The three objects are plain values outside any
    session (read them; never add them to one), and nothing about them is cached: the caller
    checks token, grant and company on every request.
    """
    row = connection.execute(_BEARER_QUERY, {"access_hash": secret_hash(access_token)}).first()
    if row is None:
        return None
    grant_at = len(_TOKEN.c)
    client_at = grant_at + len(_GRANT.c)
    return (_detached(OAuthToken, _TOKEN, tuple(row[:grant_at])),
            _detached(Grant, _GRANT, tuple(row[grant_at:client_at])),
            _detached(OAuthClient, _CLIENT, tuple(row[client_at:])))


def find_refresh_token(session: Session, refresh_token: str) -> OAuthToken | None:
    """The token row for a presented refresh token, whatever its state."""
    return session.exec(
        select(OAuthToken).where(OAuthToken.refresh_hash == secret_hash(refresh_token))
    ).first()


def find_any_token(session: Session, value: str) -> tuple[OAuthToken, str] | None:
    """(row, "access_token" | "refresh_token") for either kind of token."""
    row = find_access_token(session, value)
    if row is not None:
        return row, "access_token"
    row = find_refresh_token(session, value)
    return (row, "refresh_token") if row is not None else None


def spend_refresh_token(session: Session, *, clock: Clock, token: OAuthToken) -> bool:
    """Rotate: mark a refresh token used; True only for the first caller (reuse detection)."""
    result = session.execute(
        update(OAuthToken)
        .where(col(OAuthToken.id) == token.id)
        .where(col(OAuthToken.refreshed_at).is_(None))
        .where(col(OAuthToken.revoked_at).is_(None))
        .values(refreshed_at=clock.now())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def revoke_family(session: Session, *, clock: Clock, family: str) -> int:
    """Revoke every token descended from one authorization code; returns how many."""
    result = session.execute(
        update(OAuthToken)
        .where(col(OAuthToken.family) == family)
        .where(col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_grant_tokens(session: Session, *, clock: Clock, grant_id: str) -> int:
    """Revoke every token of a grant (the grant itself is changed by the consent service)."""
    result = session.execute(
        update(OAuthToken)
        .where(col(OAuthToken.grant_id) == grant_id)
        .where(col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def access_token_is_live(token: OAuthToken, now: datetime) -> bool:
    """Not revoked and not expired (the grant is checked separately, on every request)."""
    return token.revoked_at is None and token.access_expires_at > now


def refresh_token_is_live(token: OAuthToken, now: datetime) -> bool:
    """Not revoked, not yet rotated and not past its absolute lifetime."""
    return (
        token.revoked_at is None
        and token.refreshed_at is None
        and token.refresh_expires_at is not None
        and token.refresh_expires_at > now
    )


def ensure_unique_name(session: Session, name: str) -> None:
    """Two companies with one name would confuse customers on the consent screen."""
    if session.exec(select(OAuthClient).where(OAuthClient.name == name.strip())).first():
        raise Conflict(f"A company named {name!r} is already registered.")


def publish_notice(session: Session, *, clock: Clock, client: OAuthClient,
                   notice: dict[str, list[str]]) -> OAuthClient:
    """A new version of the company's notice: purposes per scope it is registered for.

    Existing grants keep the purposes their customers saw; a notice that adds purposes is put
    to each customer on their next visit (see consent.service.pending_notices).
    """
    allowed = set(json.loads(client.allowed_scopes))
    problems = {}
    if not notice:
        problems["notice"] = "declare at least one scope and its purposes"
    unknown = sorted(set(notice) - allowed)
    if unknown:
        raise Forbidden(f"{', '.join(unknown)}: not among the company's registered scopes; the "
                        "operator must approve new scopes. The current notice stays in force.",
                        problems={"notice": "scopes the operator has not approved"})
    for scope, purposes in notice.items():
        if not purposes or any(not p.strip() or len(p) > 200 for p in purposes):
            problems[f"purposes[{scope}]"] = "declare 1 or more purposes of up to 200 characters"
    if problems:
        raise ValidationFailed("The notice is not valid; the current one stays in force.",
                               problems=problems)
    client.notice = json.dumps({scope: [p.strip() for p in purposes]
                                for scope, purposes in notice.items()})
    client.notice_version += 1
    session.add(client)
    audit_service.record(session, clock=clock, event=audit_service.AuditEvent(
        actor=f"company:{client.client_id}", action="notice.published",
        resource=f"company:{client.client_id}",
        details={"company": client.client_id, "notice_version": client.notice_version,
                 "scopes": sorted(notice)}))
    return client
