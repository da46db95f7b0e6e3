"""Pages as Litestar `Template` responses, through the Jinja2 engine of the app.

`Page(...)` is what a route returns: the template's name, its title, who is
looking (the signed-in caller, or None), the status, and the template's
values. The page speaks the viewer's language (their profile's, else the
browser's): the context gets `gettext`/`ngettext` bound to it (Jinja's i18n
extension finds them there), `lang` for `<html lang>`, and the viewer's name
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


async def viewer_of(request: Request[Any, Any, Any]) -> Caller | None:
    """Whoever the session cookie signs in, for a page whose route does not look
    them up itself (None: a stranger)."""
    session = await session_caller(request)
    return None if session is None else session[0]


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
    shows its translation. `viewer` None: a stranger (or a refusal that comes
    before anyone is looked up), who gets the browser's language.
    """

    def __init__(
        self,
        template_name: str,
        *,
        title: str,
        viewer: Caller | None = None,
        status: int = 200,
        **values: Any,
    ) -> None:
        super().__init__(
            template_name=template_name,
            context={"product": PRODUCT, **values},
            status_code=status,
            media_type=MediaType.HTML,
            headers=dict(NO_STORE),
        )
        self.title = title
        self.viewer = viewer

    def create_template_context(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        context = super().create_template_context(request)
        viewer = self.viewer
        preferred = None if viewer is None else viewer.preferred_language
        language = choose_language(preferred, request.headers.get("accept-language"))
        catalog = translations(language)
        context.update(_gettext_functions(catalog))
        # A text made in Python (an error from a service, a title): translated
        # when the catalog has it, else shown as it is; never %-formatted.
        context["translate"] = catalog.gettext
        context["lang"] = language
        context["signed_in"] = "" if viewer is None else viewer.username
        # What the header's navigation offers: the viewer's roles (none for a stranger).
        context["roles"] = frozenset() if viewer is None else frozenset(viewer.roles)
        context["title"] = catalog.gettext(self.title)
        return context
