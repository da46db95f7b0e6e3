"""Every package that goes into a service's image declares what its code imports.

An image holds one service's package and the packages it declares, at the
versions in uv.lock (deploy/build-service-env.sh). A module the code reaches
only through somebody else's dependencies (aiohttp through kubernetes-asyncio,
httpx through jupyterlab) works until that other package drops it, and a
module that only the workspace environment has (the launcher) is not in the
image at all. So each import in a package's source must come from the package
itself, the standard library, or a distribution its own pyproject.toml lists.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# The workspace members that images are built from (the launcher is not one).
IMAGE_MEMBERS = [
    ROOT / "schemas",
    ROOT / "runtime",
    *sorted(p.parent for p in ROOT.glob("services/*/pyproject.toml")),
]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0])


def project_of(member: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((member / "pyproject.toml").read_text())
    return project


def modules_of(member: Path) -> set[str]:
    """Top-level modules a workspace member's wheel holds (hatch's `packages`)."""
    packages = project_of(member)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return {Path(p).name for p in packages}


def distributions_by_module() -> dict[str, set[str]]:
    """Top-level module -> the distributions providing it, in this (workspace) environment."""
    found = {
        module: {normalized(d) for d in dists} for module, dists in packages_distributions().items()
    }
    # Editable workspace members name no files in their metadata: read their pyproject.
    for member in [ROOT / "launcher", *IMAGE_MEMBERS]:
        name = normalized(project_of(member)["project"]["name"])
        for module in modules_of(member):
            found.setdefault(module, set()).add(name)
    return found


def imports_in(source: Path) -> Iterator[str]:
    """Top-level names of the absolute imports in a file, TYPE_CHECKING ones included."""
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def undeclared_imports(member: Path) -> dict[str, list[str]]:
    """`module (distribution)` -> files importing it without the member declaring it."""
    declared = {requirement_name(r) for r in project_of(member)["project"]["dependencies"]}
    own = modules_of(member)
    providers = distributions_by_module()
    problems: dict[str, list[str]] = {}
    for source in sorted((member / "src").rglob("*.py")):
        for module in set(imports_in(source)):
            if module in sys.stdlib_module_names or module in own or module == "__future__":
                continue
            dists = providers.get(module, set())
            if not dists & declared:
                key = f"{module} ({', '.join(sorted(dists)) or 'no known distribution'})"
                problems.setdefault(key, []).append(str(source.relative_to(member)))
    return problems


@pytest.mark.parametrize("member", IMAGE_MEMBERS, ids=lambda p: p.name)
def test_every_import_is_a_declared_dependency(member: Path) -> None:
    problems = undeclared_imports(member)
    assert not problems, (
        f"{member.relative_to(ROOT)}/pyproject.toml does not declare what its code imports: "
        + "; ".join(f"{module} in {', '.join(files[:3])}" for module, files in problems.items())
    )


def test_the_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    # A package importing the launcher and a transitive-only module is caught.
    member = tmp_path / "svc"
    (member / "src" / "svc").mkdir(parents=True)
    (member / "pyproject.toml").write_text(
        '[project]\nname = "svc"\ndependencies = ["jhaas-runtime", "kubernetes-asyncio>=31"]\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/svc"]\n'
    )
    (member / "src" / "svc" / "app.py").write_text(
        "import os\nimport aiohttp\nimport kubernetes_asyncio\nfrom jhaas_runtime import db\n"
        "from jhaas_launcher.processes import spawn\nfrom svc import app\n"
    )
    problems = undeclared_imports(member)
    assert set(problems) == {"aiohttp (aiohttp)", "jhaas_launcher (jhaas-launcher)"}
