"""The policy in force in a running service, reloaded when its file changes.

A service builds one holder in its composition root from the environment:
a file that fails validation there stops the start (PolicyError, naming the
key and line). Afterwards the file is polled (cheap: its size, mtime and
hash every few seconds) and re-read at once on SIGHUP; a file that fails
validation then is logged with its key and line, and the policy already in
force stays.

A polled change is loaded once the file has stayed the same for one poll
interval: an editor or `cp` writing the file in place must not get its first
half (say, an empty file: the built-in defaults) loaded as the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from jhaas_runtime.aio import wait_event
from jhaas_runtime.logs import get_logger
from jhaas_runtime.policy import PolicyError, load_policy
from jhaas_schemas.policy import PublishedPolicy

log = get_logger(__name__)

POLICY_FILE = "JHAAS_POLICY_FILE"
POLL_SECONDS = "JHAAS_POLICY_POLL_SECONDS"
Subscriber = Callable[[PublishedPolicy], None]
Fingerprint = tuple[int, int, str] | None
_NOTHING_SEEN: object = object()


class PolicyHolder:
    def __init__(
        self, path: Path | None, env: Mapping[str, str], *, poll_seconds: float = 5.0
    ) -> None:
        self.path = path
        self.env = dict(env)
        self.poll_seconds = poll_seconds
        self._fingerprint = self._stamp()
        self._changed: object = _NOTHING_SEEN  # a change seen once, loaded when it stays
        self._current = load_policy(path, self.env)
        self._subscribers: list[Subscriber] = []
        # Why the file last read was not loaded (None: the file is in force).
        self.problem: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PolicyHolder:
        """JHAAS_POLICY_FILE (unset or empty: the built-in defaults) and its overrides."""
        raw = env.get(POLICY_FILE, "").strip()
        try:
            poll = float(env.get(POLL_SECONDS, "5") or 5)
        except ValueError:
            raise PolicyError(f"{POLL_SECONDS}: must be a number of seconds") from None
        if poll <= 0:
            raise PolicyError(f"{POLL_SECONDS}: must be more than 0")
        return cls(Path(raw) if raw else None, env, poll_seconds=poll)

    def current(self) -> PublishedPolicy:
        return self._current

    __call__ = current  # a holder is a PolicySource

    def subscribe(self, callback: Subscriber) -> None:
        """Call `callback(new)` after each reload that changes the policy in force."""
        self._subscribers.append(callback)

    def check(self) -> bool:
        """Reload when the file changed since it was last read and has stayed the
        same since the previous check; True when the policy in force changed."""
        stamp = self._stamp()
        if stamp == self._fingerprint:
            self._changed = _NOTHING_SEEN
            return False
        if stamp != self._changed:
            self._changed = stamp  # maybe still being written: look again next time
            return False
        self._fingerprint, self._changed = stamp, _NOTHING_SEEN
        return self.reload()

    def reload(self) -> bool:
        try:
            new = load_policy(self.path, self.env)
        except PolicyError as exc:
            self.problem = str(exc)
            log.error(
                "policy file not valid; the policy in force stays",
                problems=str(exc),
                version=self._current.version,
            )
            return False
        self.problem = None
        if new.version == self._current.version:
            return False
        old, self._current = self._current, new
        log.info("policy reloaded", version=new.version, previous=old.version)
        for callback in self._subscribers:
            try:
                callback(new)
            except Exception:
                log.exception("a policy subscriber failed", version=new.version)
        return True

    async def watch(self) -> None:
        """Poll the file until cancelled; SIGHUP re-reads it at once."""
        if self.path is None:
            await asyncio.Event().wait()  # nothing to watch: the defaults never change
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, wake.set)
        try:
            while True:
                if await wait_event(wake, self.poll_seconds):
                    wake.clear()
                    self._fingerprint, self._changed = self._stamp(), _NOTHING_SEEN
                    self.reload()
                else:
                    self.check()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)

    def _stamp(self) -> Fingerprint:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, digest)


def holder_or_exit(service: str, env: Mapping[str, str]) -> PolicyHolder:
    """The service's policy holder; a policy that is not valid ends the start
    here, before anything is connected, with every problem on stderr."""
    try:
        return PolicyHolder.from_env(env)
    except PolicyError as exc:
        print(f"{service}: the policy is not valid; not starting:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
