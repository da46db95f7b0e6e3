"""The pages' languages: which one a request gets, and catalogs that cover every text.

The catalog check extracts the texts as `./jhaas translations` does: a text
added to a template or marked N_() without its German translation fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from litestar import Litestar, get
from litestar.params import FromQuery
from litestar.testing import TestClient

from gateway.web.i18n import LOCALE_DIR, choose_language, from_accept_language, translations
from gateway.web.render import Page, template_config

pytestmark = pytest.mark.unit

GATEWAY = Path(__file__).parents[1]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR, de;q=0.5", "de"),
        ("de;q=0, en;q=0.1", "en"),
        ("de, en", "de"),
        ("en, de", "en"),
        ("fr", "en"),
        ("de;q=nonsense", "en"),
        ("", "en"),
        ("de-AT;q=0.7, en;q=0.6", "de"),
    ],
)
def test_the_browser_language_counts_with_its_weights(header: str, language: str) -> None:
    assert from_accept_language(header) == language


def test_the_profile_wins_over_the_browser_and_unknown_ones_do_not() -> None:
    assert choose_language("en", "de") == "en"
    assert choose_language("de", "en") == "de"
    assert choose_language("xx", "de") == "de"
    assert choose_language(None, None) == "en"


def _extracted() -> set[str | tuple[str, str]]:
    method_map = [
        ("src/gateway/**.py", "python"),
        ("src/gateway/web/templates/**.html", "jinja2"),
    ]
    options = {"src/gateway/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(GATEWAY), method_map, options, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def test_every_text_of_the_pages_has_its_german_translation() -> None:
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="de")
    untranslated = []
    for text in _extracted():
        singular = text if isinstance(text, str) else text[0]
        entry = catalog.get(singular)
        strings = [] if entry is None else entry.string
        strings = [strings] if isinstance(strings, str) else list(strings)
        if entry is None or entry.fuzzy or not all(strings):
            untranslated.append(singular)
            continue
        wanted = set(PLACEHOLDER.findall(singular))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) <= wanted | {"num"}, (singular, string)
    assert untranslated == []


def test_the_german_catalog_compiles_and_translates() -> None:
    assert translations("de").gettext("Sign in") == "Anmelden"
    assert translations("en").gettext("Sign in") == "Sign in"


@get("/t", sync_to_thread=False)
def _page(shown: FromQuery[str]) -> Page:
    return Page("problem.html", title="Sign in", message=shown)


def test_a_page_escapes_values_and_translations_alike() -> None:
    app = Litestar([_page], template_config=template_config())
    with TestClient(app) as client:
        german = {"Accept-Language": "de"}
        page = client.get("/t", params={"shown": "Sign in"}, headers=german)
        hostile = client.get("/t", params={"shown": '<script>alert("x")</script>'})
    assert '<html lang="de">' in page.text and "<title>Anmelden - JHaaS</title>" in page.text
    assert "<p>Anmelden</p>" in page.text  # a message from Python, translated
    assert "<script>alert" not in hostile.text and "&lt;script&gt;" in hostile.text
    assert page.headers["cache-control"] == "no-store"
