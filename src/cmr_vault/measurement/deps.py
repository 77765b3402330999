"""Which company a dashboard page is for: the one signed in with the company session cookie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency

from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.measurement import sign_in
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.runtime import Runtime


@dataclass(frozen=True)
class SignedInCompany:
    """A company in the browser; `role` picks the company's menu in the page layout."""

    client: OAuthClient
    role: str = "company"


MaybeCompany: TypeAlias = NamedDependency[SignedInCompany | None]


def company_cookie_name(runtime: Runtime) -> str:
    """`__Host-` binds the cookie to our origin over https; plain-http demo cannot use it."""
    return "__Host-cmr_company" if runtime.settings.secure_cookies else "cmr_company"


def company_token(request: Request[Any, Any, Any], runtime: Runtime) -> str | None:
    """The raw company session token from the browser, if any."""
    return request.cookies.get(company_cookie_name(runtime))


def provide_signed_in_company(
    request: Request[Any, Any, Any], db_session: DbSession, runtime: RuntimeDep
) -> SignedInCompany | None:
    """The company signed in in this browser, or None (the page then sends it to sign in)."""
    token = company_token(request, runtime)
    client = (
        sign_in.resolve_session(db_session, clock=runtime.clock, token=token) if token else None
    )
    return SignedInCompany(client) if client else None
