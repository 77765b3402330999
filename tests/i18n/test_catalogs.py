"""No visible string is left untranslated: every marked English text has a German one.

The msgids are extracted the way a translator would (Babel's Python and Jinja extractors over
`src/` and `templates/`), so a string marked anywhere and not translated fails here, with the
lines to paste into the area's `.po` file in the message.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from cmr_vault.i18n.catalogs import LOCALE_DIR, catalog_files, merged_catalog

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
JINJA = "jinja2.ext:babel_extract"
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trimmed": "true"}
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|\{[a-z_]*\}")

#: Which catalog a new string most likely belongs in, by where it was found.
AREAS = [
    ("templates/base.html", "base"),
    ("templates/_layout.html", "base"),
    ("templates/errors/", "errors"),
    ("src/cmr_vault/web/", "errors"),
    ("templates/portal/signin", "accounts"),
    ("templates/portal/signup", "accounts"),
    ("templates/portal/password", "accounts"),
    ("templates/portal/", "portal"),
    ("src/cmr_vault/portal/", "portal"),
    ("templates/marketing/", "marketing"),
    ("src/cmr_vault/marketing/", "marketing"),
    ("templates/intents/", "intents"),
    ("src/cmr_vault/intents/", "intents"),
    ("templates/oauth/", "oauth"),
    ("src/cmr_vault/oauth/", "oauth"),
    ("templates/measurement/", "company"),
    ("src/cmr_vault/measurement/", "company"),
    ("templates/auditor/", "auditor"),
    ("src/cmr_vault/auditor/", "auditor"),
    ("src/cmr_vault/accounts/", "accounts"),
]


def extracted_messages() -> dict[str | tuple[str, ...], list[str]]:
    """Every msgid marked in the code, with the places it is marked."""
    found: dict[str | tuple[str, ...], list[str]] = defaultdict(list)
    sources = [
        (ROOT / "templates", "templates", [("**.html", JINJA)]),
        (ROOT / "src" / "cmr_vault", "src/cmr_vault", [("**.py", "python")]),
    ]
    for directory, prefix, method_map in sources:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            directory,
            method_map,
            options_map={"**.html": JINJA_OPTIONS},
            keywords=KEYWORDS,
        ):
            if message and (message[0] if isinstance(message, tuple) else message):
                found[message].append(f"{prefix}/{filename}:{lineno}")
    return found


def _area(place: str) -> str:
    return next((area for prefix, area in AREAS if place.startswith(prefix)), "base")


def _as_po(message: str | tuple[str, ...]) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    if isinstance(message, tuple):
        return (
            f"msgid {quoted(message[0])}\nmsgid_plural {quoted(message[1])}\n"
            'msgstr[0] ""\nmsgstr[1] ""\n'
        )
    return f'msgid {quoted(message)}\nmsgstr ""\n'


def test_strings_are_marked_in_templates_and_python() -> None:
    messages = extracted_messages()
    assert "Skip to content" in messages
    assert any(place.startswith("src/") for places in messages.values() for place in places)


def test_every_marked_string_has_a_german_translation() -> None:
    german = merged_catalog("de")
    missing: dict[str, list[str]] = defaultdict(list)
    for message, places in extracted_messages().items():
        msgid = message[0] if isinstance(message, tuple) else message
        translated = german.get(msgid)
        if (
            translated is None
            or not translated.string
            or (isinstance(translated.string, tuple) and not all(translated.string))
        ):
            missing[_area(places[0])].append(f"#: {places[0]}\n{_as_po(message)}")
    report = "\n".join(
        f"--- add to src/cmr_vault/locale/de/LC_MESSAGES/{area}.po:\n" + "\n".join(entries)
        for area, entries in sorted(missing.items())
    )
    assert not missing, f"untranslated strings:\n{report}"


def test_no_string_is_translated_two_ways_in_different_files() -> None:
    seen: dict[str, tuple[str, Path]] = {}
    clashes = []
    for path in catalog_files("de"):
        with path.open("rb") as po:
            for message in read_po(po, locale="de"):
                if not message.id or not message.string:
                    continue
                msgid = message.id[0] if isinstance(message.id, tuple) else message.id
                string = str(message.string)
                if msgid in seen and seen[msgid][0] != string:
                    clashes.append(f"{msgid!r}: {seen[msgid][1].name} and {path.name}")
                seen.setdefault(msgid, (string, path))
    assert not clashes, clashes


def test_translations_keep_every_placeholder() -> None:
    german = merged_catalog("de")
    wrong = []
    for message in german:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        wrong += [message.id for string in strings if set(PLACEHOLDER.findall(string)) != wanted]
    assert not wrong, wrong


def test_each_area_has_its_own_catalog() -> None:
    names = {path.stem for path in catalog_files("de")}
    assert {
        "base",
        "errors",
        "portal",
        "marketing",
        "intents",
        "oauth",
        "accounts",
        "company",
        "auditor",
    } <= names
    assert (LOCALE_DIR / "de" / "LC_MESSAGES").is_dir()
