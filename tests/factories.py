"""Factories: make customers and drive the portal the way a browser does."""

from __future__ import annotations

import re
import secrets
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.accounts.models import Account
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service

DEFAULT_PASSWORD = "correct horse battery"
CSRF_FIELD = "_csrf_token"


def unique_email() -> str:
    """A fresh address per call, so tests never collide."""
    return f"person-{secrets.token_hex(4)}@example.org"


def make_customer(
    session: Session,
    runtime: Runtime,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    profile: dict[str, Any] | None = None,
) -> Account:
    """A committed customer, optionally with profile fields."""
    keyring = runtime.keyring
    account = vault_service.sign_up_customer(
        session,
        cipher=runtime.cipher,
        data_keys=runtime.data_keys,
        clock=runtime.clock,
        index_key=keyring.index_key,
        pseudonym_key=keyring.pseudonym_key,
        email=email or unique_email(),
        password=password,
    )
    if profile:
        vault_service.update_profile(
            session,
            cipher=runtime.cipher,
            clock=runtime.clock,
            index_key=keyring.index_key,
            pseudonym_key=keyring.pseudonym_key,
            account=account,
            changes=profile,
        )
    session.commit()
    return account


class Browser:
    """A TestClient that fills in the CSRF token the way the portal's forms do."""

    def __init__(self, client: TestClient[Litestar]) -> None:
        self.client = client
        client.headers["Accept"] = "text/html,application/xhtml+xml"

    def csrf_token(self, page: str = "/signin") -> str:
        html = self.client.get(page).text
        match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
        assert match, f"no CSRF field on {page}"
        return match.group(1)

    def submit(
        self, path: str, data: dict[str, Any], *, page: str | None = None, follow: bool = False
    ) -> Any:
        """POST a form from `page` (default: the same path) with its CSRF token."""
        token = self.csrf_token(page or path)
        return self.client.post(path, data={**data, CSRF_FIELD: token}, follow_redirects=follow)

    def sign_up(self, email: str | None = None, password: str = DEFAULT_PASSWORD) -> str:
        email = email or unique_email()
        response = self.submit(
            "/signup", {"email": email, "password": password, "password_confirm": password}
        )
        assert response.status_code == 303, response.text
        return email

    def sign_in(self, email: str, password: str = DEFAULT_PASSWORD) -> Any:
        return self.submit("/signin", {"email": email, "password": password, "next": "/profile"})
