"""Dates and times as the customer reads them: in their language, already in their time zone.

The pages hand these to their templates (`when`, `day`): "1 Dec 2026, 14:03" in English,
"1. Dez. 2026, 14:03" in German. English follows British order, day before month, as the
vault's customers in Europe expect it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date, format_time

from cmr_vault.i18n import current_language

_LOCALES = {"en": "en_GB", "de": "de_DE"}


def _locale() -> str:
    return _LOCALES.get(current_language(), "en_GB")


def when(moment: datetime) -> str:
    """A moment, to the minute ("1 Dec 2026, 14:03")."""
    locale = _locale()
    return f"{format_date(moment, 'medium', locale=locale)}, " \
           f"{format_time(moment, 'HH:mm', locale=locale)}"


def day(moment: datetime) -> str:
    """A day, written out ("1 December 2026")."""
    return format_date(moment, "long", locale=_locale())


#: Give to a page's template context: `{{ when(entry.at) }}`, `{{ day(until) }}`.
FORMATTERS: dict[str, Any] = {"when": when, "day": day}
