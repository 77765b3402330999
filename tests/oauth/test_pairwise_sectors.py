"""Pairwise subjects per sector: unlinkable across companies, shared within one sector.

The sector document is served by a real HTTP server on the loopback address and read by the
vault over the network, as `cmr-vault clients add --sector-identifier-uri` does.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from cmr_vault.cli import main
from cmr_vault.errors import ValidationFailed
from cmr_vault.oauth import sectors
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import OAuthClient
from cmr_vault.runtime import Runtime
from tests.conftest import ClockUnderTest
from tests.factories import Browser
from tests.oauth.flows import Company
from tests.oauth.oidc_clients import NATIVE_REDIRECT, oauth_client, sign_in, validated_id_token

WEB = "https://shop.example/cb"
MOBILE_WEB = "https://m.shop.example/cb"
NOTICE = {"openid": ["Sign you in"], "profile.email:read": ["Send your order receipts"]}


@pytest.fixture
def sector_document() -> Iterator[str]:
    """A loopback server publishing the shop's sector document; yields its URL."""
    body = json.dumps([WEB, MOBILE_WEB, NATIVE_REDIRECT]).encode()

    class Document(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/sector.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            """Quiet: the test output is not the place for access logs."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Document)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/sector.json"
    server.shutdown()
    server.server_close()


def _register(
    db_session: Session,
    runtime: Runtime,
    *,
    redirect_uris: list[str],
    public: bool = False,
    sector: str | None = None,
) -> Company:
    row, secret = oauth_service.register_client(
        db_session,
        clock=runtime.clock,
        registration=oauth_service.ClientRegistration(
            name=f"Shop {len(redirect_uris)}{public}{sector}",
            description="A shop.",
            homepage="https://shop.example",
            privacy_policy_url="https://shop.example/privacy",
            redirect_uris=redirect_uris,
            notice=NOTICE,
            public=public,
            sector_identifier=sector,
        ),
    )
    db_session.commit()
    return Company(row, secret)


def _sub(
    client: TestClient[Litestar],
    browser: Browser,
    company: Company,
    redirect_uri: str,
    clock: ClockUnderTest,
) -> str:
    discovered = client.get("/.well-known/openid-configuration").json()
    with oauth_client(client, company, redirect_uri=redirect_uri) as oauth:
        token, nonce = sign_in(oauth, browser, discovered)
        return str(validated_id_token(oauth, discovered, token, nonce, clock)["sub"])


def _sector_of(uri: str, redirect_uris: list[str]) -> str:
    return sectors.sector_identifier(
        uri, sectors.fetch_document(uri, allow_loopback=True), redirect_uris, allow_loopback=True
    )


def test_two_companies_see_different_subs_for_one_customer(
    browser: Browser,
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
) -> None:
    # Both come back to the same host: a shared host is no reason to share names.
    first = _register(db_session, runtime, redirect_uris=[WEB])
    second = _register(db_session, runtime, redirect_uris=[WEB, MOBILE_WEB])
    assert _sub(client, browser, first, WEB, clock) != _sub(client, browser, second, WEB, clock)


def test_one_company_with_two_redirect_hosts_under_one_sector_sees_one_sub(
    browser: Browser,
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
    sector_document: str,
) -> None:
    shop = _register(
        db_session,
        runtime,
        redirect_uris=[WEB, MOBILE_WEB],
        sector=_sector_of(sector_document, [WEB, MOBILE_WEB]),
    )
    assert _sub(client, browser, shop, WEB, clock) == _sub(client, browser, shop, MOBILE_WEB, clock)


def test_a_companys_web_shop_and_native_app_share_the_sector_sub(
    browser: Browser,
    client: TestClient[Litestar],
    db_session: Session,
    runtime: Runtime,
    clock: ClockUnderTest,
    sector_document: str,
) -> None:
    web = _register(
        db_session, runtime, redirect_uris=[WEB], sector=_sector_of(sector_document, [WEB])
    )
    app = _register(
        db_session,
        runtime,
        redirect_uris=[NATIVE_REDIRECT],
        public=True,
        sector=_sector_of(sector_document, [NATIVE_REDIRECT]),
    )
    outsider = _register(db_session, runtime, redirect_uris=[WEB])

    shared = _sub(client, browser, web, WEB, clock)
    assert _sub(client, browser, app, NATIVE_REDIRECT, clock) == shared
    assert _sub(client, browser, outsider, WEB, clock) != shared


def test_a_sector_document_that_does_not_list_the_redirect_uri_is_refused(
    sector_document: str,
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _sector_of(sector_document, [WEB, "https://other.example/cb"])
    assert "https://other.example/cb" in refused.value.problems["sector_identifier_uri"]


def test_a_sector_uri_must_be_https() -> None:
    with pytest.raises(ValidationFailed):
        sectors.sector_identifier("http://shop.example/sector.json", json.dumps([WEB]), [WEB])


def test_a_sector_server_that_never_answers_is_given_up_on() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        with pytest.raises(ValidationFailed) as refused:
            sectors.fetch_document(
                f"http://127.0.0.1:{silent.getsockname()[1]}/s.json",
                allow_loopback=True,
                timeout=0.2,
            )
    finally:
        silent.close()
    assert "could not be read" in refused.value.problems["sector_identifier_uri"]


def test_the_operator_registers_a_sector_from_its_uri_or_from_a_file(
    cli_env: None,
    db_session: Session,
    sector_document: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CMR_VAULT_SECTOR_IDENTIFIER_ALLOW_LOOPBACK", "true")
    common = [
        "clients",
        "add",
        "--homepage",
        "https://shop.example",
        "--privacy-policy",
        "https://shop.example/privacy",
        "--scope",
        "openid=Sign you in",
        "--sector-identifier-uri",
        sector_document,
    ]
    fetched = CliRunner().invoke(main, [*common, "--name", "Web", "--redirect-uri", WEB])
    document = tmp_path / "sector.json"
    document.write_text(json.dumps([MOBILE_WEB]))
    from_file = CliRunner().invoke(
        main,
        [
            *common,
            "--name",
            "Mobile",
            "--redirect-uri",
            MOBILE_WEB,
            "--sector-identifier-file",
            str(document),
            "--id-token-alg",
            "EdDSA",
        ],
    )
    refused = CliRunner().invoke(
        main, [*common, "--name", "Other", "--redirect-uri", "https://other.example/cb"]
    )

    assert fetched.exit_code == 0, fetched.output
    assert from_file.exit_code == 0, from_file.output
    assert refused.exit_code != 0 and "does not list" in refused.output
    rows = {c.name: c for c in db_session.exec(select(OAuthClient)).all()}
    assert rows["Web"].sector_identifier == rows["Mobile"].sector_identifier == "127.0.0.1"
    assert rows["Mobile"].id_token_alg == "EdDSA"
    assert "Other" not in rows
