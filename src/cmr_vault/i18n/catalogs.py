"""Loading the gettext catalogs: every `.po` file of a language, merged, compiled at start.

The catalogs are kept as `.po` text only (no compiled `.mo` in the repository or the wheel):
one file per area, so two people adding strings to different pages never edit the same file.
At start each language's files are read with Babel, merged into one catalog and compiled in
memory, which takes a few milliseconds.
"""

from __future__ import annotations

import gettext as stdlib_gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"


def catalog_files(language: str, locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """The `.po` files of one language, in a stable order."""
    return sorted((locale_dir / language / "LC_MESSAGES").glob("*.po"))


def merged_catalog(language: str, locale_dir: Path = LOCALE_DIR) -> Catalog:
    """The union of a language's `.po` files (fuzzy and empty translations left out)."""
    merged = Catalog(locale=language, domain="messages")
    for path in catalog_files(language, locale_dir):
        with path.open("rb") as po:
            part = read_po(po, locale=language)
        for message in part:
            if not message.id or message.fuzzy or not _translated(message.string):
                continue
            merged[message.id] = message
    return merged


def _translated(string: str | tuple[str, ...]) -> bool:
    if isinstance(string, tuple):
        return all(string)
    return bool(string)


@cache
def translations(language: str) -> stdlib_gettext.NullTranslations:
    """The compiled translations of a language; English (the source) translates to itself."""
    files = catalog_files(language)
    if not files:
        return stdlib_gettext.NullTranslations()
    compiled = BytesIO()
    write_mo(compiled, merged_catalog(language))
    compiled.seek(0)
    return stdlib_gettext.GNUTranslations(compiled)


@cache
def translated_texts(language: str) -> frozenset[str]:
    """Every translation of a language: tells text already in it from untranslated English."""
    texts: set[str] = set()
    for message in merged_catalog(language):
        if message.id:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            texts.update(strings)
    return frozenset(texts)
