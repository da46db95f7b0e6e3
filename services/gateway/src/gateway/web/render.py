"""Pages as Litestar `Template` responses, through the Jinja2 engine of the app.

`Page(...)` is what a route returns: the template's name, the language chosen
for this request (`language_of`), the status, and the template's values. The
context gets `gettext`/`ngettext` bound to that language (Jinja's i18n
extension finds them there), `lang` for `<html lang>`, and who is signed in
for the header.
"""

from __future__ import annotations

from gettext import NullTranslations
from pathlib import Path
from typing import Any

import jinja2
from jinja2.runtime import Context
from litestar import MediaType, Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig
from markupsafe import escape

from gateway.accounts import Caller
from gateway.guards import session_caller
from gateway.web.i18n import choose_language, translations

TEMPLATES_DIR = Path(__file__).parent / "templates"
PRODUCT = "JHaaS"
# A page holds a form, a refusal or someone's data: never kept in a cache.
NO_STORE = {"Cache-Control": "no-store"}


def make_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every page: a value is text unless a template says otherwise
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The gettext functions come with each page's context, in its language;
    # "newstyle": they format their own %(name)s values, escaped.
    environment.newstyle_gettext = True  # type: ignore[attr-defined]
    return environment


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        instance=JinjaTemplateEngine.from_environment(make_environment()),
    )


def language_for(request: Request[Any, Any, Any], caller: Caller | None) -> str:
    """The language of `caller`'s profile, else (no one signed in) the browser's."""
    preferred = None if caller is None else caller.preferred_language
    return choose_language(preferred, request.headers.get("accept-language"))


async def language_of(request: Request[Any, Any, Any]) -> str:
    """`language_for` whoever the session cookie signs in, when the route has not
    looked them up itself."""
    session = await session_caller(request)
    return language_for(request, None if session is None else session[0])


def _gettext_functions(catalog: NullTranslations) -> dict[str, Any]:
    @jinja2.pass_context
    def gettext(context: Context, message: str, /, **values: Any) -> str:
        text = catalog.gettext(message)
        if context.eval_ctx.autoescape:
            # A translation is text, never HTML (so a catalog cannot inject any);
            # its %(values)s are escaped by Markup's %.
            text = escape(text)
        return text % values

    @jinja2.pass_context
    def ngettext(context: Context, singular: str, plural: str, count: int, /, **values: Any) -> str:
        text = catalog.ngettext(singular, plural, count)
        if context.eval_ctx.autoescape:
            text = escape(text)
        return text % {"num": count, **values}

    return {"gettext": gettext, "ngettext": ngettext}


class Page(Template):
    """A full HTML page in one language; `values` are what the template shows.

    `title` is the English text (marked with N_ where it is written); the page
    shows its translation. `language` None: the browser's (for the refusals
    that come before anyone is known).
    """

    def __init__(
        self,
        template_name: str,
        *,
        title: str,
        language: str | None = None,
        status: int = 200,
        signed_in: str = "",
        **values: Any,
    ) -> None:
        super().__init__(
            template_name=template_name,
            context={"signed_in": signed_in, "product": PRODUCT, **values},
            status_code=status,
            media_type=MediaType.HTML,
            headers=dict(NO_STORE),
        )
        self.title = title
        self.language = language

    def create_template_context(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        context = super().create_template_context(request)
        language = self.language or choose_language(None, request.headers.get("accept-language"))
        catalog = translations(language)
        context.update(_gettext_functions(catalog))
        # A text made in Python (an error from a service, a title): translated
        # when the catalog has it, else shown as it is; never %-formatted.
        context["translate"] = catalog.gettext
        context["lang"] = language
        context["title"] = catalog.gettext(self.title)
        return context
