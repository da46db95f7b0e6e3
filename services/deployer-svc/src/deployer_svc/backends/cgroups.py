"""Memory and CPU limits of a hub user's server, enforced by the kernel (cgroups).

The deployer makes one cgroup per account with the approved limits; the hub's
spawner writes the server's pid into the cgroup's `cgroup.procs` before it drops
root, so the server and everything it starts (kernels, terminals) stay inside.

Both hierarchies occur on hosts: cgroup v2 (one tree, `memory.max`, `cpu.max`;
`/sys/fs/cgroup/cgroup.controllers` exists) and v1 (a tree per controller,
`memory.limit_in_bytes`, `cpu.cfs_quota_us`). Swap is limited too where the
kernel accounts it, or a server could page its way past its memory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
BASE = "jhaas"  # every account's cgroup lives under <controller root>/jhaas/
PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupHost:
    """Where this host keeps cgroups, and which version."""

    fs: Path = CGROUP_FS

    @property
    def version(self) -> int:
        return 2 if (self.fs / "cgroup.controllers").exists() else 1

    def dirs(self, account: str) -> list[Path]:
        """The account's cgroup folders (one per controller on v1)."""
        if self.version == 2:
            return [self.fs / BASE / account]
        return [self.fs / "memory" / BASE / account, self.fs / "cpu" / BASE / account]

    def procs_files(self, account: str) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.dirs(account)]

    def procs_templates(self) -> list[str]:
        """`procs_files` as `str.format` templates of `{account}` (for the hub's spawner)."""
        marker = "\0"
        return [
            path.replace("{", "{{").replace("}", "}}").replace(marker, "{account}")
            for path in self.procs_files(marker)
        ]

    def create(self, account: str, memory: int, cpu_cores: float) -> None:
        """Make (or update) the account's cgroup with these limits; OSError when refused."""
        quota = max(1000, round(cpu_cores * PERIOD_US))
        if self.version == 2:
            self._enable_v2_controllers()
            folder = self.fs / BASE / account
            folder.mkdir(exist_ok=True)
            _write(folder / "memory.max", str(memory))
            _write_if_present(folder / "memory.swap.max", "0")
            _write(folder / "cpu.max", f"{quota} {PERIOD_US}")
            return
        memory_dir, cpu_dir = self.dirs(account)
        for folder in (memory_dir, cpu_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # memsw must stay >= the memory limit: lower it last, raise it first.
        memsw = memory_dir / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):
            _write_if_present(memsw, str(memory))
        _write(memory_dir / "memory.limit_in_bytes", str(memory))
        _write_if_present(memsw, str(memory))
        _write(cpu_dir / "cpu.cfs_period_us", str(PERIOD_US))
        _write(cpu_dir / "cpu.cfs_quota_us", str(quota))

    def remove(self, account: str) -> None:
        """Remove the account's cgroups (its processes must be gone)."""
        for folder in self.dirs(account):
            with contextlib.suppress(FileNotFoundError):
                folder.rmdir()

    def _enable_v2_controllers(self) -> None:
        base = self.fs / BASE
        base.mkdir(exist_ok=True)
        for folder in (self.fs, base):
            enabled = (folder / "cgroup.subtree_control").read_text().split()
            missing = [c for c in ("memory", "cpu") if c not in enabled]
            if missing:
                _write(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))

    def probe(self) -> str | None:
        """None when limits can be set here; else why not, in words."""
        account = f"probe-{os.getpid()}"
        try:
            self.create(account, 256 * 1024**2, 0.5)
        except OSError as exc:
            return (
                f"this host refused cgroup v{self.version} limits "
                f"({exc.strerror or exc} at {exc.filename or self.fs})"
            )
        finally:
            with contextlib.suppress(OSError):
                self.remove(account)
        return None


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


def _write_if_present(path: Path, value: str) -> None:
    if path.exists():
        _write(path, value)
