"""The API documentation (Swagger UI) from the gateway's own /static, not a CDN.

Litestar's plugin writes the start-up code inline; this one loads it from
/static/swagger-init.js, so the documentation runs under a CSP without inline
script. The files are vendored (static/vendor/VENDORED says which version).
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

VENDOR = "/static/vendor/swagger-ui"
INIT_SCRIPT = "/static/swagger-init.js"
# Its colours darkened where they fall short of AA contrast.
A11Y_CSS = "/static/swagger-a11y.css"


class LocalSwaggerPlugin(SwaggerRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            js_url=f"{VENDOR}/swagger-ui-bundle.js",
            css_url=f"{VENDOR}/swagger-ui.css",
            standalone_preset_js_url=f"{VENDOR}/swagger-ui-bundle.js",  # unused: no preset
            path="/swagger",
            favicon="",
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema["info"]["title"]))
        spec_url = escape(self.get_openapi_json_route(request))
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{self.css_url}">
<link rel="stylesheet" href="{A11Y_CSS}">
<script src="{self.js_url}" defer></script>
<script src="{INIT_SCRIPT}" defer></script>
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec_url}"></div>
</body>
</html>
""".encode()
