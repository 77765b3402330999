"""Which language a person reads, and the gettext functions that follow it.

The language is a context variable: the web layer sets it once per request (see
`cmr_vault.i18n.web`), a worker sending an e-mail sets it with `use_language` for that
customer. Services call `gettext` without knowing where the language came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from babel.support import LazyProxy

from cmr_vault.i18n.catalogs import translations

DEFAULT_LANGUAGE = "en"
#: The languages the vault speaks, with each one's name in itself (for the language switch).
LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch"}

_language: ContextVar[str] = ContextVar("cmr_vault_language", default=DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language of the request (or job) being served."""
    return _language.get()


def set_language(language: str) -> None:
    """Set the language for the rest of the current context (one request's task)."""
    _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


@contextmanager
def use_language(language: str) -> Iterator[None]:
    """Speak `language` inside the block, e.g. for an e-mail to a customer from a worker."""
    token = _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        _language.reset(token)


def gettext(message: str) -> str:
    """`message` (English) in the current language."""
    return translations(_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for `n`, in the current language."""
    return translations(_language.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it, which Babel extracts)
    """Mark text translated later (a label in a table of constants); returns it unchanged.
    Where it is shown, pass it through `gettext`."""
    return message


def lazy_gettext(message: str) -> LazyProxy:
    """For module-level text (labels, constants): translated each time it is shown."""
    return LazyProxy(gettext, message, enable_cache=False)
