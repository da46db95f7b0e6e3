"""Starting the local backend's processes: a free port, a detached child with its log.

The deployer's own copy, not the launcher's: a service depends only on what its
package declares, and the launcher is not in the deployer's image.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_detached(
    argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path, umask: int = -1
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own (it outlives us and can be stopped as a
    group), with stdout and stderr appended to `log_path` (only its owner may read it)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        return subprocess.Popen(  # noqa: S603 - a fixed interpreter with our own arguments
            list(argv),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            umask=umask,
        )
