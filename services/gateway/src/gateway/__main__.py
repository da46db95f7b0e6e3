"""`python -m gateway` serves the API.

`python -m gateway create-admin --username NAME` adds an admin account:

it reads the password from stdin (a prompt on a terminal); when none is
given it generates one and prints it, and the admin must change it at the
first sign-in.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

import msgspec
import uvicorn

from gateway.accounts import Accounts, generate_password
from gateway.app import create_app
from gateway.auth import Passwords
from gateway.errors import body_error_fields
from gateway.schemas import UserCreate
from gateway.settings import SERVICE, GatewaySettings
from gateway.store import VERSIONS_DIR, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.logs import configure_logging
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.errors import DomainError
from jhaas_schemas.model import Role


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    create_admin = commands.add_parser("create-admin", help="create an admin account")
    create_admin.add_argument("--username", required=True)
    args = parser.parse_args(argv)

    settings = GatewaySettings.from_env()
    configure_logging(SERVICE, level=settings.runtime.log_level, fmt=settings.runtime.log_format)
    if args.command == "create-admin":
        return asyncio.run(_create_admin(settings, args.username))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        server_header=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (any local user);
        # the gateway reads it itself, from JHAAS_TRUSTED_PROXIES only.
        proxy_headers=False,
        lifespan="on",
        access_log=False,  # gateway.access_log writes JSON lines with the correlation id
        log_config=None,
    )
    return 0


def _read_password() -> tuple[str, bool]:
    """The password typed or piped in, or a generated one (then True)."""
    if sys.stdin.isatty():
        typed = getpass.getpass("Password (empty: generate one): ")
    else:
        typed = sys.stdin.readline().rstrip("\r\n")
    return (typed, False) if typed else (generate_password(), True)


async def _create_admin(settings: GatewaySettings, username: str) -> int:
    password, generated = _read_password()
    try:
        request = msgspec.convert(
            {"username": username, "password": password, "roles": [Role.ADMIN.value]}, UserCreate
        )
    except msgspec.ValidationError as exc:
        problems = ", ".join(f"{k}: {v}" for k, v in body_error_fields(exc).items())
        print(f"cannot create the admin: {problems}", file=sys.stderr)
        return 2
    db = Database(settings.runtime.database_url)
    try:
        await upgrade_to_head(db, metadata, VERSIONS_DIR)
        accounts = Accounts(db, Passwords(), session_ttl=settings.session_ttl)
        await accounts.create_user(
            username=request.username,
            password=request.password,
            roles=(Role.ADMIN,),
            display_name="Administrator",
            # A printed password has been seen: its owner must replace it first.
            password_change_required=generated,
        )
    except DomainError as exc:
        print(f"cannot create the admin: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(f"admin {username!r} created")
    if generated:
        print(f"password: {password}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
