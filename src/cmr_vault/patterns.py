"""Regular expressions that validation and the OpenAPI document share.

Three engines read them: pydantic's (Rust `regex`), the JSON Schema validators of API clients
and fuzzers (ECMA-262, often read as ASCII), and Python's `re` (our own checks, `str.strip`).
They disagree on `\\s`, `\\d` and on what `$` may leave behind, so these patterns spell every
class out in explicit code points and use no shorthand classes. A value one engine accepts,
the others accept too: a body the document calls valid is never refused as malformed.
"""

from __future__ import annotations

# Exactly the characters Python's str.isspace() (and so str.strip()) treats as white space.
WHITESPACE = r"\x09-\x0d\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
CONTROL = r"\x00-\x08\x0e-\x1b\x7f"

NOT_BLANK = rf"[^{WHITESPACE}]"
"""Somewhere in the value, one character that is not white space."""

_HOST = rf"[^{WHITESPACE}{CONTROL}/?#@:\[\]]+"
_PORT = r"(:[0-9]{1,5})?"
_REST = rf"([/?][^{WHITESPACE}{CONTROL}#]*)?"

HTTPS_URL = rf"^https://{_HOST}{_PORT}{_REST}$"
"""An https URL with a host name, no user info and no fragment."""

WEB_URL = rf"^https?://{_HOST}{_PORT}{_REST}$"
"""As HTTPS_URL, or plain http (which only a loopback test set-up may use)."""

# A redirect URI also has no quote or backslash: RFC 3986 allows neither, and both would have to
# be escaped in the error descriptions of RFC 6749 §4.1.2.1, which allow neither either.
_REDIRECT_HOST = rf'[^{WHITESPACE}{CONTROL}/?#@:\[\]"\\]+'
_REDIRECT_REST = rf'([/?][^{WHITESPACE}{CONTROL}#"\\]*)?'

HTTPS_REDIRECT = rf"^https://{_REDIRECT_HOST}{_PORT}{_REDIRECT_REST}$"
"""Where a company's web site may be sent back: as HTTPS_URL, without quote or backslash."""

NATIVE_REDIRECT = (
    rf"^(https://{_REDIRECT_HOST}{_PORT}|http://(127\.0\.0\.1|\[::1\]){_PORT}"
    rf'|[A-Za-z][A-Za-z0-9+-]*\.[A-Za-z0-9+.-]*:)([/?][^{WHITESPACE}{CONTROL}#@"\\]*)?$'
)
"""Where a native app may be sent back: https, a loopback port or a reverse-domain scheme
(RFC 8252 §7.1, §7.3), without quote or backslash."""

_MEANINGS: dict[str, str] = {
    NOT_BLANK: "must not be blank",
    HTTPS_URL: "must be an https URL with a host name, without user name or fragment",
    WEB_URL: "must be an http(s) URL with a host name, without user name or fragment",
    HTTPS_REDIRECT: "must be an https URL with a host name, without user name, fragment, "
    "quote or backslash",
    NATIVE_REDIRECT: "must be an https URL (a native app may also use http on 127.0.0.1 or "
    "[::1], or a reverse-domain scheme such as com.example.app:/cb), without a fragment, quote "
    "or backslash",
}


def explain(pattern: str, meaning: str) -> str:
    """Name what a pattern asks for, so an error can say it in words; returns the pattern."""
    _MEANINGS[pattern] = meaning
    return pattern


def meaning_of(pattern: str) -> str | None:
    """What a pattern of ours asks for, in words (None for one we do not know)."""
    return _MEANINGS.get(pattern)
