"""`python -m bench [events|reads|deployer|housekeeping|classstart|calendar|all]`."""

from __future__ import annotations

import argparse
import asyncio

from bench import events


def main() -> None:
    parser = argparse.ArgumentParser(prog="jhaas bench")
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["all", "events", "reads", "deployer", "housekeeping", "classstart", "calendar"],
    )
    parser.add_argument("--events", type=int, default=2000, help="events to push through")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--seconds", type=int, default=10, help="load time per HTTP target")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--courses", type=int, default=3, help="hubs deployed one after another")
    parser.add_argument("--triggers", type=int, default=300, help="course starts for lateness")
    parser.add_argument("--spread", type=float, default=20.0, help="seconds the starts span")
    parser.add_argument("--participants", type=int, default=300, help="class size")
    parser.add_argument("--spawns", type=int, default=50, help="servers started at once")
    parser.add_argument("--signin-seconds", type=float, default=60.0, help="sign-ins span")
    args = parser.parse_args()
    if args.which in ("all", "events"):
        asyncio.run(events.main(args.events, postgres=not args.no_postgres))
    if args.which in ("all", "reads"):
        from bench import reads

        asyncio.run(reads.main(args.seconds, args.concurrency, postgres=not args.no_postgres))
    if args.which in ("all", "deployer"):
        from bench import deployer

        asyncio.run(deployer.main(args.courses, args.triggers, args.spread))
    if args.which in ("all", "housekeeping"):
        from bench import housekeeping

        asyncio.run(housekeeping.main(postgres=not args.no_postgres))
    if args.which in ("all", "classstart"):
        from bench import classstart

        asyncio.run(classstart.main(args.participants, args.spawns, args.signin_seconds))
    if args.which in ("all", "calendar"):
        from bench import capacity_calendar

        asyncio.run(capacity_calendar.main(postgres=not args.no_postgres))


if __name__ == "__main__":
    main()
