"""Blind indexes and pseudonyms: keyed hashes that allow lookups without plaintext.

Sign-in by e-mail needs an equality lookup on a value the database must not hold in clear. An
HMAC-SHA256 under a key kept outside the database gives a stable, unguessable index; without the
key, a dictionary attack on the column is not possible.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata


def normalise_email(email: str) -> str:
    """Case-fold and NFC-normalise so one mailbox always has one index."""
    return unicodedata.normalize("NFC", email.strip()).casefold()


def blind_index(index_key: bytes, purpose: str, value: str) -> str:
    """A hex HMAC of `value`, domain-separated by `purpose` so indexes cannot be joined."""
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(index_key, message, hashlib.sha256).hexdigest()


def email_index(index_key: bytes, email: str) -> str:
    """The blind index used to find an account by its sign-in e-mail."""
    return blind_index(index_key, "email", normalise_email(email))


def subject_pseudonym(pseudonym_key: bytes, account_id: str) -> str:
    """The audit log's name for a customer: stable, unlinkable without the key."""
    return blind_index(pseudonym_key, "audit-subject", account_id)[:32]
