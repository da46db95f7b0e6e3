"""A hub's configuration as data: one fixed `jupyterhub_config.py`, and JSON beside it.

Both backends give every hub the same configuration file, `CONFIG_TEXT`, which
no value is ever formatted into. Everything that varies from hub to hub (ports,
URLs, paths, limits, the image, the OAuth client, who may sign in) is a JSON
document in `SETTINGS_FILE` next to it, which the file loads and copies into
JupyterHub's `c[Section][trait]`. A course's name or a user's name is then a
JSON string, read back as a string: no quote, newline or `__import__` in it can
become code.

What cannot be JSON is a marker, a JSON object of exactly one key from a closed
set (`MARKERS`): a secret read from a file beside the config (local) or from an
environment variable (Kubernetes, filled by `secretKeyRef`), and `bytes.fromhex`
of one (the cookie secret). Values that come from people are always strings, so
a string that looks like a marker stays a string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CONFIG_FILE = "jupyterhub_config.py"
SETTINGS_FILE = "hub_settings.json"
MARKERS = ("$secret_file", "$env", "$fromhex")

# Section -> trait -> value, e.g. {"JupyterHub": {"bind_url": "http://…"}}.
Traits = dict[str, dict[str, Any]]

# Runs inside JupyterHub (traitlets' PyFileConfigLoader puts `get_config` and
# `__file__` in its namespace), on whatever Python the hub image has: standard
# library only, nothing of this package. Changing it restarts every hub once.
CONFIG_TEXT = '''\
# jupyterhub_config.py written by jhaas-deployer: the same text for every hub.
# Everything that varies is data in hub_settings.json beside this file.
import json
import os
from pathlib import Path

_HERE = Path(__file__).parent


def _secret_file(name):
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise ValueError("a secret file must be a plain file name: %r" % (name,))
    with open(_HERE / name, encoding="utf-8", newline="") as file:  # the value, byte for byte
        return file.read()


def _env(name):
    return os.environ[name]


_MARKERS = {"$secret_file": _secret_file, "$env": _env, "$fromhex": bytes.fromhex}


def _resolve(value):
    """JSON as it is, except an object of one marker key: its resolved argument, applied."""
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key in _MARKERS:
                return _MARKERS[key](_resolve(argument))
        return {key: _resolve(item) for key, item in value.items()}
    return value


with open(_HERE / "hub_settings.json", encoding="utf-8") as _file:
    _settings = json.load(_file)

c = get_config()  # noqa: F821
for _section, _traits in _settings["config"].items():
    for _trait, _value in _traits.items():
        c[_section][_trait] = _resolve(_value)


def _isolated_spawner():
    """LocalProcessSpawner, but hub user NAME runs as the system account
    `account_prefix` + NAME (made by the deployer), inside the cgroups the deployer
    made for it: the server joins them while still root, then drops to the account."""
    import pwd

    from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
    from traitlets import List, Unicode

    class IsolatedSpawner(LocalProcessSpawner):
        account_prefix = Unicode("", config=True)
        # `str.format` templates of {account}: the cgroup.procs files to join.
        cgroup_procs = List(Unicode(), config=True)

        def _account(self, name):
            account = self.account_prefix + name
            try:
                return pwd.getpwnam(account)
            except KeyError:
                raise RuntimeError("no system account %s for hub user %s" % (account, name))

        def make_preexec_fn(self, name):
            entry = self._account(name)
            drop = set_user_setuid(entry.pw_name)
            procs = [template.format(account=entry.pw_name) for template in self.cgroup_procs]

            def preexec():
                pid = str(os.getpid())
                for path in procs:  # an error fails the spawn: no server without its limits
                    with open(path, "w") as file:
                        file.write(pid)
                drop()

            return preexec

        def user_env(self, env):
            entry = self._account(self.user.name)
            env["USER"] = env["LOGNAME"] = entry.pw_name
            env["HOME"] = entry.pw_dir
            env["SHELL"] = entry.pw_shell
            return env

    return IsolatedSpawner


if c.JupyterHub.get("spawner_class") == "jhaas-isolated":
    c.JupyterHub.spawner_class = _isolated_spawner()
'''


@dataclass(frozen=True, kw_only=True)
class HubConfigFiles:
    """The two files of a hub's configuration, by content."""

    config: str  # always CONFIG_TEXT
    settings: str  # the JSON document, deterministic for the same input


def secret_file(name: str) -> dict[str, str]:
    """A secret read from the file `name` beside the config (never the value itself)."""
    return {"$secret_file": name}


def env(name: str) -> dict[str, str]:
    """A value read from the hub's environment variable `name`."""
    return {"$env": name}


def from_hex(source: dict[str, str]) -> dict[str, Any]:
    """The bytes a hex string from `source` (another marker) stands for."""
    return {"$fromhex": source}


def render(about: dict[str, str], traits: Traits) -> HubConfigFiles:
    """The configuration files: `about` names the hub for whoever reads the file
    (JupyterHub ignores it); `traits` are applied. Keys sorted, ASCII only: the
    same input gives the same bytes, so a change of text is a change of settings."""
    document = {"jhaas": about, "config": traits}
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    return HubConfigFiles(config=CONFIG_TEXT, settings=text + "\n")
