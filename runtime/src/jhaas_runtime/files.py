"""Private files a service makes once and keeps (keys, generated passwords, ids)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_private_file(path: Path, text: str, *, overwrite: bool = False) -> bool:
    """Create `path` (mode 0600) holding `text`; False when it exists and is kept.

    The text goes to a private temporary file first and is then linked (or,
    with `overwrite`, renamed) into place, so a second process starting at
    the same moment never reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if overwrite:
            os.replace(temp, path)
            return True
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
