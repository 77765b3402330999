"""What can go wrong with accounts and sign-in."""

from __future__ import annotations

from cmr_vault.errors import Conflict, DomainError, ErrorKind, ValidationFailed


class EmailTaken(Conflict):
    """Another account already signs in with this e-mail."""

    slug = "email-taken"
    title = "This e-mail is already registered"


class WeakPassword(ValidationFailed):
    """The password does not meet the minimum rules."""


class WrongPassword(DomainError):
    """Re-authentication for a sensitive action failed."""

    kind = ErrorKind.UNAUTHENTICATED
    slug = "wrong-password"
    title = "The password is not correct"


class SignInRequired(DomainError):
    """The page needs a signed-in account."""

    kind = ErrorKind.UNAUTHENTICATED
    slug = "sign-in-required"
    title = "Please sign in"


class RoleRequired(DomainError):
    """Signed in, but with a role that may not see this."""

    kind = ErrorKind.FORBIDDEN
    slug = "forbidden"
    title = "Not allowed"


class LinkNotValid(DomainError):
    """An e-mailed link that is unknown, used, expired, replaced by a newer one, or for an
    address the account no longer uses; all look the same to the person holding it."""

    kind = ErrorKind.INVALID
    slug = "link-not-valid"
    title = "This link is no longer valid"
