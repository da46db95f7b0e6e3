"""Isolating a local hub's users from each other and from the product (as root).

Every hub user's server runs as a system account of its own, made by the
deployer: `<hub prefix><hub username>`, where the prefix is derived from the
installation and the deployment, so the same person in two courses on one
machine has two accounts and deleting one course leaves the other. The account
carries a marker in its GECOS field naming its hub; the deployer only ever
changes or removes accounts that carry its hub's marker.

Without root none of this is possible, and a hub whose users share one account
must not let more than one person in: `admit` then keeps only the leader.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deployer_svc.backends.base import BackendError, Roster

log = logging.getLogger(__name__)

# A hub username as an account-name suffix: what `jhaas_schemas.hubnames` makes
# ("u" + 15 base32 characters) and any other short POSIX-safe name.
_USERNAME = re.compile(r"^[a-z][a-z0-9]{0,20}$")
MAX_ACCOUNT = 32  # Linux (useradd) limit on account names
SHELL = "/bin/bash"  # the Jupyter terminal opens the account's login shell
KILL_WAIT = 10.0

NO_ROOT = (
    "participants cannot sign in: the deployer does not run as root, so their servers "
    "could not be isolated from each other"
)
NOT_ISOLATED = (
    "participants' servers are not isolated: every server runs as the deployer's own "
    "account (isolation is turned off)"
)


def closed_folder(folder: Path) -> str:
    return (
        f"participants cannot sign in: other system accounts cannot enter {folder}, "
        "which holds the hubs' home folders, so their servers could not be isolated"
    )


NO_USERADD = (
    "participants cannot sign in: this machine has no useradd, so their servers could not "
    "run as accounts of their own"
)
NO_SINGLEUSER = (
    "participants cannot sign in: the single-user environment for separate accounts is "
    "missing (run the project's set-up), so their servers could not be isolated"
)


@dataclass(frozen=True, kw_only=True)
class Isolation:
    """What the local backend can do for a hub on this machine."""

    accounts: bool  # each user's server runs as its own system account
    limits: bool  # memory and CPU are enforced by the kernel (cgroups)
    warnings: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.accounts and self.limits


def decide(
    *,
    wanted: bool,
    is_root: bool,
    has_useradd: bool = True,
    singleuser_ready: bool = True,
    closed: Path | None = None,
    cgroup_problem: str | None = None,
) -> Isolation:
    """Whether users can be isolated, and in words why not (pure: for tests and status)."""
    if not wanted:
        return Isolation(accounts=False, limits=False, warnings=(NOT_ISOLATED,))
    why = (
        NO_ROOT
        if not is_root
        else NO_USERADD
        if not has_useradd
        else NO_SINGLEUSER
        if not singleuser_ready
        else closed_folder(closed)
        if closed is not None
        else None
    )
    if why is not None:
        return Isolation(accounts=False, limits=False, warnings=(why,))
    if cgroup_problem is not None:
        limit = f"memory and CPU limits are not enforced by the kernel: {cgroup_problem}"
        return Isolation(accounts=True, limits=False, warnings=(limit,))
    return Isolation(accounts=True, limits=True)


def admit(roster: Roster, isolation: Isolation, *, wanted: bool) -> Roster:
    """Who may use the hub: everyone when isolated (or isolation is turned off on
    purpose), else only the leader, whose server then runs as the deployer's account."""
    if isolation.accounts or not wanted:
        return roster
    return Roster(leader=roster.leader)


def hub_prefix(installation_id: str, deployment_id: str) -> str:
    """The per-hub start of every account name: 'jh' + 8 characters of a hash + '-'."""
    digest = hashlib.sha256(f"{installation_id}/{deployment_id}".encode()).hexdigest()
    return f"jh{digest[:8]}-"


def account_name(prefix: str, username: str) -> str | None:
    """The account for hub user `username`; None when it cannot be one (never a path
    or an option: the name reaches useradd and /etc/passwd)."""
    if not _USERNAME.fullmatch(username) or len(prefix) + len(username) > MAX_ACCOUNT:
        return None
    return prefix + username


def marker(installation_id: str, deployment_id: str) -> str:
    """The GECOS field of this hub's accounts: whose they are."""
    return f"jhaas {installation_id} {deployment_id}"


def hub_accounts(mark: str) -> dict[str, pwd.struct_passwd]:
    """This hub's accounts (by the marker), by name."""
    return {entry.pw_name: entry for entry in pwd.getpwall() if entry.pw_gecos == mark}


def first_closed_ancestor(path: Path, own_from: Path | None = None) -> Path | None:
    """The first of `path` and the folders above it that other accounts cannot enter
    (or run); folders at or below `own_from` (the product's data folder) are the
    deployer's to open (0711), so they do not count."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue  # made later, by us
        if mode & stat.S_IXOTH:
            continue
        if own_from is not None and (parent == own_from or own_from in parent.parents):
            continue
        return parent
    return None


def open_path(folder: Path, own_from: Path) -> None:
    """Let other accounts pass through (never list) the folders from `own_from` down to
    `folder`, and close everything else in them: what lies beside the path (databases,
    keys, JetStream, NATS credentials) loses every permission for others."""
    chain = [folder, *[p for p in folder.parents if p == own_from or own_from in p.parents]]
    for directory in reversed(chain):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o711)  # noqa: S103 - enter, never list: the homes are below
    on_path = set(chain)
    for directory in chain[1:]:
        for entry in directory.iterdir():
            if entry in on_path or entry.is_symlink():
                continue
            with contextlib.suppress(OSError):
                mode = entry.stat().st_mode
                if mode & 0o007:
                    os.chmod(entry, stat.S_IMODE(mode) & ~0o007)


def ensure_account(account: str, home: Path, mark: str) -> pwd.struct_passwd:
    """The account, made when missing, with its home (0700, its own); BackendError when
    the name is taken by an account that is not this hub's."""
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        _run(
            "useradd",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            SHELL,
            "--comment",
            mark,
            "--user-group",
            "--no-log-init",
            account,
        )
        entry = pwd.getpwnam(account)
        log.info("created system account %s", account)
    if entry.pw_gecos != mark or Path(entry.pw_dir) != home:
        raise BackendError(
            f"system account {account} exists but is not this hub's ({entry.pw_gecos!r})",
            temporary=False,
            reason="a system account for a course member could not be created",
        )
    home.mkdir(mode=0o700, exist_ok=True)
    # lchown: a user may have replaced nothing here yet, but never follow a link.
    os.lchown(home, entry.pw_uid, entry.pw_gid)
    os.chmod(home, 0o700)
    return entry


def remove_account(entry: pwd.struct_passwd) -> None:
    """Stop every process of the account, delete its home and the account."""
    kill_processes_of(entry.pw_uid)
    home = Path(entry.pw_dir)
    if home.is_dir() and not home.is_symlink():
        shutil.rmtree(home, ignore_errors=True)
    _run("userdel", entry.pw_name, ok=(0, 6))  # 6: already gone
    log.info("removed system account %s and its home", entry.pw_name)


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if uid in {int(v) for v in line.split()[1:]}:
                        found.append(int(entry.name))
                    break
    return found


def kill_processes_of(uid: int) -> list[int]:
    """SIGKILL every process running as `uid` until none is left (it may fork meanwhile)."""
    killed: list[int] = []
    deadline = time.monotonic() + KILL_WAIT
    while (pids := processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        killed += [pid for pid in pids if pid not in killed]
        time.sleep(0.05)
    return killed


def _run(*argv: str, ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(  # noqa: S603 - fixed tools, names checked by account_name
        list(argv), capture_output=True, text=True, check=False
    )
    if done.returncode not in ok:
        raise BackendError(
            f"{argv[0]} {argv[-1]} failed ({done.returncode}): {done.stderr.strip()[:300]}",
            temporary=True,
            reason="a system account for a course member could not be managed",
        )
