"""Domain errors: what went wrong, in words a user can act on, with no HTTP in sight.

Each error names its kind; `web.errors` maps kinds to status codes in one place, rendering an
RFC 9457 problem for the API and a friendly page for people.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    """The handful of outcomes a caller must tell apart."""

    INVALID = "invalid"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    kind: ClassVar[ErrorKind] = ErrorKind.INVALID
    slug: ClassVar[str] = "invalid-request"
    title: ClassVar[str] = "The request cannot be processed"

    def __init__(
        self,
        detail: str,
        *,
        problems: dict[str, str] | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or {}
        self.retry_after = retry_after
        self.headers = headers or {}


class ValidationFailed(DomainError):
    """Input broke a rule; `problems` maps each offending field to what is wrong with it."""

    slug = "validation-failed"
    title = "Some input is not valid"


class Unauthenticated(DomainError):
    """No credentials, or credentials that are not (or no longer) valid."""

    kind = ErrorKind.UNAUTHENTICATED
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(DomainError):
    """Authenticated, but not allowed to do this."""

    kind = ErrorKind.FORBIDDEN
    slug = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    """The thing asked for does not exist (or is not the caller's to see)."""

    kind = ErrorKind.NOT_FOUND
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    """The request clashes with what already exists."""

    kind = ErrorKind.CONFLICT
    slug = "conflict"
    title = "Conflict"


class TooManyRequests(DomainError):
    """A limit was reached; `retry_after` says in how many seconds to try again."""

    kind = ErrorKind.THROTTLED
    slug = "too-many-requests"
    title = "Too many requests"


class Unavailable(DomainError):
    """The vault cannot answer right now; `retry_after` says when to try again."""

    kind = ErrorKind.UNAVAILABLE
    slug = "unavailable"
    title = "Temporarily unavailable"
