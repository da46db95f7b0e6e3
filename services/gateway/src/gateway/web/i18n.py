"""Which language a page speaks, and its catalogs.

The person's profile (`preferred_language`) decides when they are signed in;
else the browser's Accept-Language; else English. The catalogs' sources are
the .po files under locale/: they are compiled in memory the first time a
language is used, so a fresh clone needs no build step and a compiled file
can never fall out of step with its source.
"""

from __future__ import annotations

import functools
import io
from gettext import NullTranslations
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from gateway.self_schemas import SUPPORTED_LANGUAGES

DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
MAX_ACCEPT_LANGUAGE = 1000  # a header longer than any browser sends is not parsed


def choose_language(preferred: str | None, accept_language: str | None) -> str:
    """The profile's language if the pages speak it, else the browser's best, else English."""
    if preferred in SUPPORTED_LANGUAGES:
        return preferred
    return from_accept_language(accept_language or "")


def from_accept_language(header: str) -> str:
    """The supported language the browser ranks highest (`de-AT;q=0.8` counts as `de`)."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for order, item in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        quality = _quality(params)
        # Earlier items win ties: "de, en" means German, though both have q=1.
        if primary in SUPPORTED_LANGUAGES and quality > best_q and quality > 0:
            best, best_q = primary, quality - order * 1e-6
    return best


def _quality(params: str) -> float:
    name, _, value = params.strip().partition("=")
    if name.strip().lower() != "q":
        return 1.0
    try:
        quality = float(value)
    except ValueError:
        return 0.0
    return quality if 0.0 <= quality <= 1.0 else 0.0


@functools.cache
def translations(language: str) -> NullTranslations:
    """The catalog of `language`: English (the source texts) has none."""
    source = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == DEFAULT_LANGUAGE or not source.is_file():
        return NullTranslations()
    with source.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)  # a fuzzy guess is not shown to anyone
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def N_(message: str) -> str:
    """Marks a text in Python for the catalog; the page translates it when it shows it."""
    return message
