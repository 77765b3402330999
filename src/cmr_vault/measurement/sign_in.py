"""A company signs in to its dashboard with its client id and secret, as it does to the API.

The operator gave the company these two values when registering it (`cmr-vault clients add`);
they are what a company's developers already hold, so the dashboard needs no second set of
credentials to hand out or lose. The browser then holds a session cookie whose token is stored
only as a SHA-256, like a customer's. Only an approved company can sign in, and a suspended
company's sessions stop at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session, col, delete

from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.measurement.models import CompanySession
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import ClientStatus, OAuthClient

# Compared against when the client id is unknown, so an unknown id costs what a wrong secret does.
_NO_SECRET = OAuthClient(
    client_id="",
    name="",
    description="",
    homepage="",
    privacy_policy_url="",
    redirect_uris="",
    allowed_scopes="",
    notice="",
    secret_hash=oauth_service.secret_hash(secrets.token_hex(16)),
    status=ClientStatus.SUSPENDED,
)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def authenticate(
    session: Session, *, clock: Clock, client_id: str, secret: str
) -> OAuthClient | None:
    """The approved company these credentials belong to, or None (audited either way)."""
    client = session.get(OAuthClient, client_id.strip()[:48]) if client_id.strip() else None
    matches = oauth_service.client_secret_matches(client or _NO_SECRET, secret)
    ok = client is not None and matches and client.status == ClientStatus.APPROVED
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=f"company:{client.client_id}" if client else "anonymous",
            action="company.sign-in",
            outcome="ok" if ok else "refused",
        ),
    )
    return client if ok else None


def start_session(
    session: Session, *, clock: Clock, client: OAuthClient, max_age: int, replacing: str | None
) -> str:
    """A new session token for the company; the browser's previous one ends (fixation)."""
    if replacing:
        end_session(session, token=replacing)
    token = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        CompanySession(
            token_hash=_token_hash(token),
            client_id=client.client_id,
            created_at=now,
            expires_at=now + timedelta(seconds=max_age),
        )
    )
    return token


def resolve_session(session: Session, *, clock: Clock, token: str) -> OAuthClient | None:
    """The approved company behind a live session token, if any."""
    row = session.get(CompanySession, _token_hash(token))
    if row is None or row.expires_at <= clock.now():
        return None
    client = session.get(OAuthClient, row.client_id)
    return client if client is not None and client.status == ClientStatus.APPROVED else None


def end_session(session: Session, *, token: str) -> None:
    """Sign out: the token stops working at once."""
    session.exec(delete(CompanySession).where(col(CompanySession.token_hash) == _token_hash(token)))
