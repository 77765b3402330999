"""Accounts, passwords, sessions and sign-in throttling.

Passwords are hashed with argon2id (argon2-cffi defaults, RFC 9106 second recommended set).
Session tokens are 256-bit random values; only their SHA-256 is stored, so a database copy
cannot be replayed as a session. Throttling lives in the database so it holds across workers.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, delete, func, select

from cmr_vault.accounts.exceptions import EmailTaken, WeakPassword, WrongPassword
from cmr_vault.accounts.models import (
    Account,
    AccountToken,
    Role,
    SignInFailure,
    TokenPurpose,
    WebSession,
)
from cmr_vault.audit import service as audit_service
from cmr_vault.clock import Clock
from cmr_vault.crypto.blind_index import blind_index, email_index, subject_pseudonym
from cmr_vault.crypto.data_keys import DataKeyStore
from cmr_vault.errors import ValidationFailed
from cmr_vault.i18n import gettext

PASSWORD_MIN = 10
PASSWORD_MAX = 256
EMAIL_PATTERN = re.compile(
    r"^[^@\s<>\"']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)

_hasher = PasswordHasher()
# Verifying against this when the e-mail is unknown keeps sign-in timing the same either way.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
# Each argon2id computation takes 64 MiB and four lanes of CPU for ~50 ms; without a bound a
# flood of sign-ups hashes in every worker thread at once (hundreds of MB, every core).
_hashing_slots = threading.BoundedSemaphore(2)


def bound_concurrent_hashing(at_once: int) -> None:
    """Let at most `at_once` password hashes or checks run at the same time in this process;
    the others wait their turn (set from the settings when the process starts)."""
    global _hashing_slots
    _hashing_slots = threading.BoundedSemaphore(at_once)


def _hash(password: str) -> str:
    with _hashing_slots:
        return _hasher.hash(password)


def hash_password(password: str) -> str:
    """The argon2id hash of an acceptable password (a hashing slot is waited for)."""
    validate_password(password)
    return _hash(password)


def _verify(password_hash: str, password: str) -> bool:
    with _hashing_slots:
        return _hasher.verify(password_hash, password)


def validate_email(email: str) -> str:
    """The e-mail, stripped, if it looks deliverable; otherwise a clear error."""
    email = email.strip()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
        raise ValidationFailed(
            gettext("That e-mail address is not valid."),
            problems={"email": gettext("not a valid e-mail address")},
        )
    return email


def validate_password(password: str) -> None:
    """Length rules only (NIST SP 800-63B): no composition rules, no truncation."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise WeakPassword(
            gettext("Passwords need %(min)d to %(max)d characters.")
            % {"min": PASSWORD_MIN, "max": PASSWORD_MAX},
            problems={"password": gettext("use %(min)d to %(max)d characters")
                      % {"min": PASSWORD_MIN, "max": PASSWORD_MAX}},
        )


def actor_for(pseudonym_key: bytes, account: Account) -> str:
    """How the audit log names an account acting on its own behalf."""
    return f"{account.role}:{subject_pseudonym(pseudonym_key, account.id)}"


def create_account(
    session: Session,
    *,
    index_key: bytes,
    data_keys: DataKeyStore,
    clock: Clock,
    role: Role,
    email: str,
    password: str,
    password_hash: str | None = None,
) -> Account:
    """Create an account with its own data key; the e-mail is kept only as a blind index.

    `password_hash` is `hash_password(password)` when the caller computed it already, before
    the database was its turn (see the portal's sign-up).
    """
    email = validate_email(email)
    validate_password(password)
    index = email_index(index_key, email)
    if session.exec(select(Account.id).where(Account.email_index == index)).first():
        raise EmailTaken(gettext("An account with this e-mail already exists; sign in instead."))
    account = Account(
        id=secrets.token_hex(16),
        role=role,
        email_index=index,
        password_hash=password_hash or _hash(password),
        created_at=clock.now(),
    )
    data_keys.create(account.id)
    session.add(account)
    session.flush()
    return account


def find_by_email(session: Session, *, index_key: bytes, email: str) -> Account | None:
    """Look an account up by e-mail through its blind index."""
    return session.exec(
        select(Account).where(Account.email_index == email_index(index_key, email))
    ).first()


def change_email(session: Session, *, index_key: bytes, account: Account, email: str) -> None:
    """Point sign-in at a new e-mail, refusing one another account uses."""
    index = email_index(index_key, validate_email(email))
    if index == account.email_index:
        return
    if session.exec(select(Account.id).where(Account.email_index == index)).first():
        raise EmailTaken(gettext("Another account already uses this e-mail."))
    account.email_index = index
    # The new address is not confirmed until its owner follows a link sent to it.
    account.email_confirmed_at = None
    session.add(account)


def password_matches(account: Account | None, password: str) -> bool:
    """Constant-work password check (argon2 compares digests in constant time)."""
    try:
        return _verify(account.password_hash if account else _DUMMY_HASH, password) and (
            account is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def require_password(account: Account, password: str) -> None:
    """Re-authentication before export, erasure or a password change (ASVS 7.5.1)."""
    if not password_matches(account, password):
        raise WrongPassword(gettext("The password is not correct."))


class SignInOutcome(StrEnum):
    """How a sign-in attempt ended."""

    SIGNED_IN = "signed-in"
    REFUSED = "refused"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class SignInResult:
    """The outcome, the account when signed in, and when to retry when throttled."""

    outcome: SignInOutcome
    account: Account | None = None
    retry_after: int = 0


@dataclass(frozen=True)
class SignInLimits:
    """Failed sign-ins allowed within `window_seconds`, counted three ways.

    Per (address, account) is the tight one: it stops guessing one password from one place.
    Per account stops a guesser who spreads over many addresses. Per address is far higher and
    only slows credential stuffing (one address trying many accounts); since one account
    contributes at most `per_address_and_account` failures from an address, failures against one
    account never block another account's sign-in, even behind a proxy that hides addresses.
    """

    per_address_and_account: int
    per_account: int
    per_address: int
    window_seconds: int


def _throttle_keys(index_key: bytes, email: str, client: str,
                   limits: SignInLimits) -> list[tuple[str, int]]:
    """(key, limit) per counter; the account ones first, as a success clears them."""
    account = email.strip().casefold()
    return [
        (blind_index(index_key, "throttle-client-email", f"{client}\x00{account}"),
         limits.per_address_and_account),
        (blind_index(index_key, "throttle-email", account), limits.per_account),
        (blind_index(index_key, "throttle-client", client), limits.per_address),
    ]


def _retry_after(session: Session, keys: list[tuple[str, int]], *, now: datetime,
                 window: int) -> int:
    since = now - timedelta(seconds=window)
    for key, limit in keys:
        failures = session.exec(
            select(func.count(), func.min(SignInFailure.failed_at)).where(
                SignInFailure.throttle_key == key, col(SignInFailure.failed_at) >= since
            )
        ).one()
        count, oldest = failures
        if count >= limit and oldest is not None:
            oldest_aware = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            return max(1, int((oldest_aware + timedelta(seconds=window) - now).total_seconds()))
    return 0


def authenticate(
    session: Session,
    *,
    index_key: bytes,
    pseudonym_key: bytes,
    clock: Clock,
    email: str,
    password: str,
    client: str,
    limits: SignInLimits,
) -> SignInResult:
    """Check credentials under throttling; failures are recorded, not raised, so they persist."""
    now = clock.now()
    keys = _throttle_keys(index_key, email, client, limits)
    wait = _retry_after(session, keys, now=now, window=limits.window_seconds)
    if wait:
        return SignInResult(SignInOutcome.THROTTLED, retry_after=wait)
    account = find_by_email(session, index_key=index_key, email=email)
    if not password_matches(account, password):
        for key, _ in keys:
            session.add(SignInFailure(throttle_key=key, failed_at=now))
        audit_service.record(
            session,
            clock=clock,
            event=audit_service.AuditEvent(
                actor="anonymous",
                action="account.sign-in",
                outcome="refused",
                subject=subject_pseudonym(pseudonym_key, account.id) if account else "",
            ),
        )
        return SignInResult(SignInOutcome.REFUSED)
    assert account is not None
    # The owner proved the password: the account's counters restart; the address's does not,
    # or one stuffed account that happens to match would reset it for the stuffer.
    account_keys = [key for key, _ in keys[:2]]
    session.exec(delete(SignInFailure).where(col(SignInFailure.throttle_key).in_(account_keys)))
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hash(password)
        session.add(account)
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=actor_for(pseudonym_key, account),
            action="account.sign-in",
            subject=subject_pseudonym(pseudonym_key, account.id),
        ),
    )
    return SignInResult(SignInOutcome.SIGNED_IN, account=account)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(
    session: Session, *, clock: Clock, account: Account, max_age: int, replacing: str | None
) -> str:
    """A new session token; any session the browser had before is ended (fixation defence)."""
    if replacing:
        end_session(session, token=replacing)
    token = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        WebSession(
            token_hash=_token_hash(token),
            account_id=account.id,
            created_at=now,
            expires_at=now + timedelta(seconds=max_age),
        )
    )
    return token


def resolve_session(session: Session, *, clock: Clock, token: str) -> Account | None:
    """The account behind a session token, if the session exists and has not expired."""
    row = session.get(WebSession, _token_hash(token))
    if row is None or row.expires_at <= clock.now():
        return None
    return session.get(Account, row.account_id)


def signed_in_at(session: Session, *, clock: Clock, token: str) -> datetime | None:
    """When the session behind a live token began: the customer's `auth_time` (OpenID Connect)."""
    row = session.get(WebSession, _token_hash(token))
    return row.created_at if row is not None and row.expires_at > clock.now() else None


def end_session(session: Session, *, token: str) -> None:
    """Sign out: the token stops working at once."""
    session.exec(delete(WebSession).where(col(WebSession.token_hash) == _token_hash(token)))


def change_password(
    session: Session,
    *,
    clock: Clock,
    pseudonym_key: bytes,
    account: Account,
    current: str,
    new: str,
    keep_token: str,
) -> None:
    """Change the password and end every other session of the account."""
    require_password(account, current)
    validate_password(new)
    account.password_hash = _hash(new)
    session.add(account)
    session.exec(
        delete(WebSession).where(
            col(WebSession.account_id) == account.id,
            col(WebSession.token_hash) != _token_hash(keep_token),
        )
    )
    # A reset link asked for before the change would undo it: it stops working.
    session.exec(delete(AccountToken).where(
        col(AccountToken.account_id) == account.id,
        col(AccountToken.purpose) == TokenPurpose.RESET_PASSWORD))
    audit_service.record(
        session,
        clock=clock,
        event=audit_service.AuditEvent(
            actor=actor_for(pseudonym_key, account),
            action="account.password-changed",
            subject=subject_pseudonym(pseudonym_key, account.id),
        ),
    )


def delete_account(session: Session, *, account: Account) -> None:
    """Remove the account row; sessions and profile rows go with it (ON DELETE CASCADE)."""
    session.exec(delete(WebSession).where(col(WebSession.account_id) == account.id))
    session.delete(account)
