"""Who is signed in: resolve the session cookie to an account of the right role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.exceptions import RoleRequired, SignInRequired
from cmr_vault.accounts.models import Account, Role
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.runtime import Runtime

#: Where the request keeps who it was signed in as, so an error page can keep its menu.
SIGNED_IN_STATE_KEY = "cmr_vault.signed_in"


@dataclass(frozen=True)
class SignedIn:
    """Who a request was signed in as, apart from the database session: an error page renders
    after the request's transaction has ended and its rows have expired."""

    id: str
    role: Role

Customer: TypeAlias = NamedDependency[Account]
MaybeAccount: TypeAlias = NamedDependency[Account | None]


def session_cookie_name(runtime: Runtime) -> str:
    """`__Host-` binds the cookie to our origin over https; plain-http demo cannot use it."""
    return "__Host-cmr_session" if runtime.settings.secure_cookies else "cmr_session"


def session_token(request: Request[Any, Any, Any], runtime: Runtime) -> str | None:
    """The raw session token from the browser, if any."""
    return request.cookies.get(session_cookie_name(runtime))


def signed_in_account(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> Account:
    """The account behind the session cookie, or SignInRequired."""
    token = session_token(request, runtime)
    account = (
        accounts_service.resolve_session(db_session, clock=runtime.clock, token=token)
        if token
        else None
    )
    if account is None:
        raise SignInRequired("Please sign in to continue.")
    request.state[SIGNED_IN_STATE_KEY] = SignedIn(account.id, account.role)
    return account


def provide_customer(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> Account:
    """The signed-in customer, or a redirect to the sign-in page."""
    account = signed_in_account(request, db_session, runtime)
    if account.role != Role.CUSTOMER:
        raise RoleRequired("This page is for customers.")
    return account


def provide_optional_account(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> Account | None:
    """The signed-in account if there is one (for pages that greet either way)."""
    try:
        return signed_in_account(request, db_session, runtime)
    except SignInRequired:
        return None


Auditor: TypeAlias = NamedDependency[Account]


def provide_auditor(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> Account:
    """The signed-in auditor, or a refusal (auditors are created by the operator)."""
    account = signed_in_account(request, db_session, runtime)
    if account.role != Role.AUDITOR:
        raise RoleRequired("This page is for auditors.")
    return account
