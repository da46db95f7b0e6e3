"""The web interface's foundation: Jinja2 templates, their components and languages.

Conventions (docs/development.md, "Pages"): a page is a template under
templates/ that extends base.html, rendered by `Page(...)`; every text goes
through gettext so the German catalog (locale/de) can translate it.
"""
