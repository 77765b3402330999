"""German and English for everything a person reads: pages, e-mails, errors, policy reasons.

English is the source language (every msgid is the English text); German comes from the gettext
catalogs in `cmr_vault/locale/de/LC_MESSAGES/*.po`, one file per area of the product. Mark a
string in Python with `gettext` (`_`), in a template with `_()` or `{% trans %}`; see
docs/i18n.md.
"""

from cmr_vault.i18n.language import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    N_,
    current_language,
    gettext,
    lazy_gettext,
    ngettext,
    use_language,
)

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "N_",
    "current_language",
    "gettext",
    "lazy_gettext",
    "ngettext",
    "use_language",
]
