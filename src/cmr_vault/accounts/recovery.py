"""Account recovery and e-mail confirmation: single-use links sent by e-mail.

A link carries `<selector>.<verifier>` (both random). Only the verifier's SHA-256 is stored and
it is compared in constant time (`hmac.compare_digest`); the selector finds the row. A link is
spent by one conditional DELETE, so two requests racing with the same link cannot both use it.
A reset link lives 30 minutes and dies when a newer one is asked for, when the password changes
and when it is used. A confirmation link lives three days and confirms only the address it was
sent to.

Asking for a reset never tells whether the address has an account: the caller answers the same
page either way, and the mail (if any) is sent after the answer has gone (see the controller).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, delete, select

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.exceptions import LinkNotValid
from cmr_vault.accounts.models import Account, AccountToken, TokenPurpose, WebSession
from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.crypto.blind_index import email_index, subject_pseudonym

RESET_LIFETIME = timedelta(minutes=30)
CONFIRMATION_LIFETIME = timedelta(days=3)
LIFETIMES = {
    TokenPurpose.RESET_PASSWORD: RESET_LIFETIME,
    TokenPurpose.CONFIRM_EMAIL: CONFIRMATION_LIFETIME,
}


@dataclass(frozen=True)
class IssuedLink:
    """A link's secret part, to be put in an e-mail and nowhere else."""

    token: str
    account_id: str


def _verifier_hash(verifier: str) -> str:
    return hashlib.sha256(verifier.encode("ascii", "replace")).hexdigest()


def _split(token: str) -> tuple[str, str]:
    selector, _, verifier = token.strip().partition(".")
    return selector[:32], verifier


def issue(session: Session, *, clock: Clock, account: Account, purpose: TokenPurpose) -> IssuedLink:
    """A new link for `account`; any earlier link of the same purpose stops working."""
    session.exec(
        delete(AccountToken).where(
            col(AccountToken.account_id) == account.id, col(AccountToken.purpose) == purpose
        )
    )
    selector, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        AccountToken(
            selector=selector,
            verifier_hash=_verifier_hash(verifier),
            account_id=account.id,
            purpose=purpose,
            email_index=account.email_index,
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    return IssuedLink(token=f"{selector}.{verifier}", account_id=account.id)


def peek(session: Session, *, clock: Clock, token: str, purpose: TokenPurpose) -> Account:
    """The account a live link belongs to, without spending it (to show the form it opens)."""
    row = _live_row(session, clock=clock, token=token, purpose=purpose)
    account = session.get(Account, row.account_id)
    if account is None:
        raise LinkNotValid("This link is no longer valid.")
    return account


def _live_row(session: Session, *, clock: Clock, token: str, purpose: TokenPurpose) -> AccountToken:
    selector, verifier = _split(token)
    row = session.get(AccountToken, selector) if selector else None
    # Compare even when no row was found, so a wrong selector costs what a wrong verifier does.
    stored = row.verifier_hash if row is not None else _verifier_hash("")
    matches = hmac.compare_digest(stored, _verifier_hash(verifier))
    if row is None or not matches or row.purpose != purpose or row.expires_at <= clock.now():
        raise LinkNotValid("This link is no longer valid.")
    return row


def spend(session: Session, *, clock: Clock, token: str, purpose: TokenPurpose) -> Account:
    """Use a link once: it is deleted in the same statement that checks it is still there and
    live, so of two requests racing with one link only one gets the account."""
    row = _live_row(session, clock=clock, token=token, purpose=purpose)
    result = session.exec(
        delete(AccountToken).where(
            col(AccountToken.selector) == row.selector,
            col(AccountToken.verifier_hash) == row.verifier_hash,
            col(AccountToken.expires_at) > clock.now(),
        )
    )
    account = session.get(Account, row.account_id)
    if result.rowcount != 1 or account is None:
        raise LinkNotValid("This link is no longer valid.")
    if row.email_index != account.email_index:
        raise LinkNotValid("This link was sent to an address the account no longer uses.")
    return account


def forget_links(session: Session, *, account_id: str, purpose: TokenPurpose) -> None:
    """Every outstanding link of one purpose stops working (after a password change)."""
    session.exec(
        delete(AccountToken).where(
            col(AccountToken.account_id) == account_id, col(AccountToken.purpose) == purpose
        )
    )


def request_reset(
    session: Session, *, clock: Clock, index_key: bytes, pseudonym_key: bytes, email: str
) -> IssuedLink | None:
    """A reset link for the account signing in with `email`, or None when there is none.

    The caller must answer the same either way. Both ways write an audit entry, so the two
    cost about the same; it names the account's pseudonym only when there is one, as a failed
    sign-in does.
    """
    account = session.exec(
        select(Account).where(Account.email_index == email_index(index_key, email))
    ).first()
    link = (issue(session, clock=clock, account=account, purpose=TokenPurpose.RESET_PASSWORD)
            if account is not None else None)
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor="anonymous",
            action="account.reset-requested",
            subject=subject_pseudonym(pseudonym_key, account.id) if account else "",
        ),
    )
    return link


def reset_password(
    session: Session, *, clock: Clock, pseudonym_key: bytes, token: str, new_password: str
) -> Account:
    """Set a new password with a reset link: the link is spent and every session ends, so
    whoever held the old password (or a stolen session) is out."""
    accounts_service.validate_password(new_password)
    account = spend(session, clock=clock, token=token, purpose=TokenPurpose.RESET_PASSWORD)
    account.password_hash = accounts_service.hash_password(new_password)
    session.add(account)
    session.exec(delete(WebSession).where(col(WebSession.account_id) == account.id))
    forget_links(session, account_id=account.id, purpose=TokenPurpose.RESET_PASSWORD)
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=accounts_service.actor_for(pseudonym_key, account),
            action="account.password-reset",
            subject=subject_pseudonym(pseudonym_key, account.id),
        ),
    )
    return account


def confirm_email(session: Session, *, clock: Clock, pseudonym_key: bytes, token: str) -> Account:
    """Mark the address the link was sent to as confirmed (spending the link)."""
    account = spend(session, clock=clock, token=token, purpose=TokenPurpose.CONFIRM_EMAIL)
    account.email_confirmed_at = clock.now()
    session.add(account)
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=accounts_service.actor_for(pseudonym_key, account),
            action="account.email-confirmed",
            subject=subject_pseudonym(pseudonym_key, account.id),
        ),
    )
    return account
