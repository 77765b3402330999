"""The OpenID Connect userinfo endpoint (Core 1.0 §5.3), for tokens whose grant has `openid`.

It answers with the company's pairwise subject for the customer and nothing more: every
profile field leaves the vault through a read that states a purpose the customer agreed to
(`/api/v1/subjects/{sub}/profile`), decided by the policy engine and audited, and userinfo has
no way to say a purpose.
"""

from __future__ import annotations

from litestar import Controller, route
from litestar.di import Provide

from cmr_vault.oauth.deps import CompanyAccessDep, insufficient_scope, provide_company_access
from cmr_vault.oauth.schemas import UserInfoDocument
from cmr_vault.oauth.scopes import OPENID
from cmr_vault.web.openapi import ACCESS_TOKEN


class UserInfoApi(Controller):
    """GET or POST with the access token in the Authorization header (§5.3.1)."""

    path = "/oauth/userinfo"
    tags = ["oauth"]
    security = ACCESS_TOKEN
    dependencies = {"access": Provide(provide_company_access, sync_to_thread=True)}

    @route("/", http_method=["GET", "POST"], status_code=200, sync_to_thread=False)
    def userinfo(self, access: CompanyAccessDep) -> UserInfoDocument:
        """The customer's `sub` for this company, while the grant includes `openid`."""
        if OPENID not in access.scopes:
            raise insufficient_scope("This token's grant does not include openid.", OPENID)
        return {"sub": access.grant.pairwise_subject}
