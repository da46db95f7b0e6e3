"""`python -m jhaas_launcher up`: the whole product on this machine.

Starts NATS (JetStream on disk under the data folder, every process with its
own credential), every service and the gateway with embedded defaults, prints
where to sign in, restarts a process that dies, and stops everything cleanly
on Ctrl-C.

`python -m jhaas_launcher nats-credentials --out DIR` writes the NATS server's
authorization and one credential per process, for compose and Kubernetes;
`nats-streams` creates the streams or applies changed settings to them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from jhaas_launcher.natsauth import NATS_ADMIN, SERVER_CONFIG, apply_streams, ensure_credentials
from jhaas_launcher.stack import (
    ADMIN_USERNAME,
    GATEWAY,
    SERVICES,
    Stack,
    initial_admin_password,
)
from jhaas_runtime.aio import wait_event
from jhaas_runtime.policy import PolicyError, load_policy

MAX_RESTARTS = 5
POLICY_FILE = "JHAAS_POLICY_FILE"
# The documented example policy beside the launcher in a checkout of the repository.
EXAMPLE_POLICY = Path(__file__).resolve().parents[3] / "deploy" / "policy.yaml"


def default_policy(env: Mapping[str, str]) -> str:
    """JHAAS_POLICY_FILE when set (empty: the built-in defaults), else the
    repository's example policy when there is one."""
    if POLICY_FILE in env:
        return env[POLICY_FILE]
    return str(EXAMPLE_POLICY) if EXAMPLE_POLICY.is_file() else ""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def up(args: argparse.Namespace) -> int:
    for port, what in ((args.port, "--port"), (args.nats_port, "--nats-port")):
        if not _port_free(port):
            print(f"port {port} is in use; choose another with {what}", file=sys.stderr)
            return 2
    try:
        # request-svc and governance-svc would refuse it too; say so before anything starts.
        load_policy(Path(args.policy) if args.policy else None, os.environ)
    except PolicyError as exc:
        print(f"the policy is not valid; not starting:\n{exc}", file=sys.stderr)
        return 2
    data_dir: Path = args.data_dir
    stack = Stack(
        data_dir=data_dir,
        nats_port=args.nats_port,
        gateway_port=args.port,
        readers=args.reader,
        extra_env={POLICY_FILE: args.policy},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"starting JHaaS in {data_dir} ...", flush=True)
    print(f"policy: {args.policy or 'the built-in defaults'}", flush=True)
    try:
        await stack.start()
    except (RuntimeError, TimeoutError, ValueError) as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print(
        "\nJHaaS is running.\n"
        f"  Sign in:   {stack.gateway_url}/  (API docs: {stack.gateway_url}/schema/swagger)\n"
        f"  Admin:     {admin_line(data_dir)}\n"
        f"  NATS:      {stack.nats_url}  (credentials: {stack.credentials.folder})\n"
        f"  Data/logs: {data_dir} / {stack.log_dir}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    restarts: dict[str, int] = {}
    modules = dict((*SERVICES, GATEWAY))
    try:
        while not stop.is_set():
            await wait_event(stop, 1.0)
            for name in stack.dead():
                restarts[name] = restarts.get(name, 0) + 1
                code = stack.processes[name].process.returncode
                if restarts[name] > MAX_RESTARTS:
                    print(
                        f"{name} keeps dying (exit {code}); stopping. See {stack.log_dir}",
                        file=sys.stderr,
                    )
                    return 1
                print(
                    f"{name} exited with {code}; restarting ({restarts[name]}/{MAX_RESTARTS})",
                    file=sys.stderr,
                    flush=True,
                )
                stack.processes.pop(name)
                stack.start_process(name, modules[name])
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    return 0


def admin_line(data_dir: Path) -> str:
    """The gateway makes the first admin's password when none is given; we only show it."""
    username = os.environ.get("JHAAS_ADMIN_USERNAME", ADMIN_USERNAME)
    if os.environ.get("JHAAS_ADMIN_PASSWORD"):
        return f"{username} / the password in JHAAS_ADMIN_PASSWORD"
    generated = initial_admin_password(data_dir)
    if generated:
        hint = "(made by the gateway: change it after signing in)"
        return f"{username} / {generated}\n             {hint}"
    return f"{username} (its password was changed; it is no longer shown here)"


def nats_credentials(args: argparse.Namespace) -> int:
    try:
        credentials = ensure_credentials(args.out, args.reader)
    except ValueError as exc:
        print(f"cannot write credentials: {exc}", file=sys.stderr)
        return 2
    print(
        f"NATS credentials in {credentials.folder} (kept; missing ones are made):\n"
        f"  {SERVER_CONFIG}: the server's authorization (public keys only)\n"
        "  <name>.nk: one NKey seed per process, each for that process only; "
        f"{NATS_ADMIN}.nk is for your own tools (nats CLI) and never for a process"
    )
    return 0


def nats_streams(args: argparse.Namespace) -> int:
    try:
        asyncio.run(apply_streams(args.server, args.nkey, args.replicas))
    except Exception as exc:  # any failure: say it plainly, exit non-zero
        print(f"could not apply the stream settings: {exc!r}", file=sys.stderr)
        return 1
    print(f"every stream exists with this version's settings ({args.replicas} replicas)")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="jhaas", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("up", help="run the whole product on this machine")
    run.add_argument(
        "--data-dir", default="./data", help="where databases, JetStream and logs live"
    )
    run.add_argument("--port", type=int, default=8000, help="the gateway's HTTP port")
    run.add_argument("--nats-port", type=int, default=4222, help="the NATS client port")
    reader_help = "another institution that gets a read-only credential (repeatable)"
    run.add_argument("--reader", action="append", default=[], help=reader_help)
    run.add_argument(
        "--policy",
        default=default_policy(os.environ),
        help="the governance policy file (default: JHAAS_POLICY_FILE, else deploy/policy.yaml;"
        " an empty value: the built-in defaults)",
    )
    creds = sub.add_parser(
        "nats-credentials",
        help="write the NATS server's authorization and one credential per process",
    )
    creds.add_argument("--out", required=True, type=Path, help="folder for the files (kept)")
    creds.add_argument("--reader", action="append", default=[], help=reader_help)
    streams = sub.add_parser(
        "nats-streams",
        help="create every stream or apply this version's settings (operator credential)",
    )
    streams.add_argument("--server", required=True, help="NATS URL(s), comma-separated")
    streams.add_argument("--nkey", required=True, type=Path, help=f"the {NATS_ADMIN}.nk seed")
    streams.add_argument("--replicas", type=int, default=1, help="JHAAS_STREAM_REPLICAS")
    args = parser.parse_args()
    if args.command == "nats-credentials":
        sys.exit(nats_credentials(args))
    if args.command == "nats-streams":
        sys.exit(nats_streams(args))
    args.data_dir = Path(args.data_dir).resolve()
    if args.policy:
        args.policy = str(Path(args.policy).resolve())
    # Everything the product writes (databases with password hashes, keys, logs)
    # is for this user alone; the processes it starts inherit the mask.
    os.umask(0o077)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    # As root, hub users' system accounts pass through it (never list it) to their
    # homes under hubs/; everything in it is closed to them (the mask, and the
    # deployer closes what an older version left open).
    args.data_dir.chmod(0o711 if os.geteuid() == 0 else 0o700)
    sys.exit(asyncio.run(up(args)))


if __name__ == "__main__":
    main()
