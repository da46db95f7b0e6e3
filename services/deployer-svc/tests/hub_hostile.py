"""Hostile strings for every field of a HubDeployment that reaches a hub, and a sentinel
that tells whether one of them ran as code.

Each payload, if it ever runs, touches the file named by `$JHAAS_PWNED`; a test points
that variable at a fresh path and asserts afterwards that no file is there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import strategies as st

from deployer_svc.backends.base import HubDeployment, OAuthClient
from jhaas_schemas.model import HubSpec, Resources

SENTINEL_ENV = "JHAAS_PWNED"
RUN = "__import__('pathlib').Path(__import__('os').environ['JHAAS_PWNED']).touch()"
SHELL = "__import__('os').system('touch \"$JHAAS_PWNED\"')"

FRAGMENTS = [
    "'", '"', '"""', "'''", "\\", "\\'", "\n", "\r", "\r\n", "#", "\x00", "{", "}",
    "{username}", "%s", "${HOME}", "`id`", ";", "\u2028", "\u0085", "\ufeff", "\u202e",
    "é", "日本語", "🦄",
    f"\n{RUN}\n", f"');{RUN};('", f'"""\n{RUN}\n"""', f"\\\n{RUN}", f"\n{SHELL}  # ",
    f"{{{RUN}}}",
    # Strings that look like the settings' markers stay strings.
    '{"$env": "PATH"}', '{"$secret_file": "api_token"}', '{"$fromhex": "00"}', "$env",
]  # fmt: skip

_ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
_PIECES = st.lists(st.one_of(st.sampled_from(FRAGMENTS), _ANY_TEXT), min_size=1, max_size=6)
_SHORT = _PIECES.map("".join)
# Long enough to cross any buffer or line limit a config reader might have.
_LONG = _SHORT.filter(bool).map(lambda s: (s * (20_000 // len(s) + 1))[:20_000])

hostile = st.one_of(_SHORT, _SHORT, _SHORT, _LONG)


def _file_name(text: str) -> str:
    """As hostile as a folder name can be: no '/', NUL or '$', not hidden, <= 200 bytes."""
    name = "d" + text.replace("/", "").replace("\x00", "").replace("$", "")
    return name.encode()[:200].decode(errors="ignore")


# The local backend refuses ids with '/' or a leading '.'; the OS refuses NUL; JupyterHub
# expands `$VAR` in the folder it looks for its config in (traitlets' filefind), so a
# hub cannot start from a folder with '$' whatever the config says. Ids are UUIDs.
deployment_ids = hostile.map(_file_name)
# An environment variable cannot hold NUL (a limit of the OS, not of the config).
env_safe = hostile.map(lambda s: s.replace("\x00", ""))

_PAD = st.sampled_from(["", " ", "\n", "\t", " \r\n", "\u2003"])


def _quantity(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid quantity inside hostile whitespace (the parsers strip it)."""
    return st.builds(lambda a, q, b: a + q + b, _PAD, core, _PAD)


cpus = _quantity(st.sampled_from(["1", "500m", "2.5", "100m"]))
memories = _quantity(st.sampled_from(["2Gi", "512Mi", "1G", "1000000000"]))
storages = _quantity(st.sampled_from(["5Gi", "10G", "1Ti"]))


@st.composite
def hubs(
    draw: st.DrawFn,
    ids: st.SearchStrategy[str] = deployment_ids,
    secrets: st.SearchStrategy[str] = hostile,
) -> HubDeployment:
    """A HubDeployment built directly (no schema validation filters it)."""
    spec = HubSpec(
        title=draw(hostile),
        slug=draw(hostile),
        description=draw(hostile),
        starts_at=datetime(2027, 4, 12, 9, tzinfo=UTC),
        ends_at=datetime(2027, 7, 30, 18, tzinfo=UTC),
        image=draw(hostile),
        default_interface=draw(st.one_of(st.just("lab"), hostile)),  # type: ignore[arg-type]
        resources=Resources(
            cpu=draw(cpus),
            memory=draw(memories),
            storage=draw(storages),
            gpus=draw(st.sampled_from([0, 1])),
        ),
        expected_participants=30,
    )
    oauth = OAuthClient(
        client_id=draw(hostile),
        client_secret=draw(secrets),
        authorize_url=draw(hostile),
        token_url=draw(hostile),
        userdata_url=draw(hostile),
    )
    return HubDeployment(
        deployment_id=draw(ids),
        request_id=draw(hostile),
        slug=spec.slug,
        configuration=spec,
        api_token=draw(secrets),
        oauth=draw(st.sampled_from([oauth, None])),
    )


@contextlib.contextmanager
def sentinel() -> Iterator[Path]:
    """A path that exists afterwards only if a payload ran; `$JHAAS_PWNED` names it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "PWNED"
        before = os.environ.get(SENTINEL_ENV)
        os.environ[SENTINEL_ENV] = str(path)
        try:
            yield path
        finally:
            if before is None:
                os.environ.pop(SENTINEL_ENV, None)
            else:
                os.environ[SENTINEL_ENV] = before
