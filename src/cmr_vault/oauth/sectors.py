"""Sector identifiers (OpenID Connect Core §8.1, Registration §5): one pairwise `sub` across a
company's registrations.

A company whose apps are separate registrations (a web shop and its native app), or whose one
registration comes back to several hosts, names a `sector_identifier_uri`: an https URL of a JSON
array listing every redirect URI it may use. The vault reads it once, when the operator
registers the company (fetched here with short timeouts, or handed over as a file), checks that
it lists every redirect URI of the registration, and keeps its host as the sector. Only the
sector's owner can list a registration in that document, so no company can join another's
sector by naming it.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from cmr_vault.errors import ValidationFailed
from cmr_vault.marketing.delivery import UnsafeEndpoint, check_endpoint

MAX_DOCUMENT_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 5.0


def _refused(why: str) -> ValidationFailed:
    return ValidationFailed(
        "The sector identifier cannot be used.", problems={"sector_identifier_uri": why}
    )


def fetch_document(
    uri: str, *, allow_loopback: bool = False, timeout: float = FETCH_TIMEOUT_SECONDS
) -> bytes:
    """GET the sector document: https to a public address, no redirects, at most 64 KiB."""
    try:
        check_endpoint(uri, allow_loopback=allow_loopback)
    except UnsafeEndpoint as exc:
        raise _refused(str(exc)) from exc
    try:
        with httpx.stream(
            "GET",
            uri,
            timeout=timeout,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise _refused(f"{uri} answered {response.status_code}, not 200")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _refused(f"{uri} is larger than {MAX_DOCUMENT_BYTES} bytes")
            return body
    except httpx.HTTPError as exc:
        raise _refused(f"{uri} could not be read: {type(exc).__name__}") from exc


def listed_redirect_uris(document: bytes | str) -> list[str]:
    """The redirect URIs a sector document lists (a JSON array of strings)."""
    try:
        listed = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refused("the document is not JSON") from exc
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        raise _refused("the document must be a JSON array of redirect URIs")
    return listed


def sector_identifier(
    uri: str, document: bytes | str, redirect_uris: list[str], *, allow_loopback: bool = False
) -> str:
    """The sector (the URI's host), once the document lists every redirect URI."""
    parts = urlsplit(uri)
    loopback = allow_loopback and parts.scheme == "http" and parts.hostname == "127.0.0.1"
    if (parts.scheme != "https" and not loopback) or not parts.hostname or parts.username:
        raise _refused("must be an https URL without user name or password")
    listed = set(listed_redirect_uris(document))
    missing = [u for u in redirect_uris if u not in listed]
    if missing:
        raise _refused(f"the document does not list {', '.join(missing)}")
    return parts.hostname
