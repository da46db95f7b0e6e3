"""The baseline of the reads benchmark: a bare Litestar endpoint that checks the
same bearer token as the gateway (same verifier, same secret), run by the same
server (uvicorn), and answers a constant body without NATS or a database.

Run as `python -m bench.bare_app PORT [full|remembered]` with JHAAS_JWT_SECRET and
JHAAS_PUBLIC_URL set. `full` (the default) verifies the token in full on every
request, as the baseline was defined when the goal was set; `remembered` uses the
gateway's verified-token memory too, which leaves little but Litestar itself.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException

from gateway.auth import BearerTokens, InvalidToken


def create_bare_app(tokens: BearerTokens, *, full: bool = True) -> Litestar:
    check = tokens.verify_in_full if full else tokens.verify

    @get("/bare/{request_id:str}")
    async def read(request: Request[object, object, object], request_id: str) -> dict[str, str]:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise NotAuthorizedException("bearer token required")
        try:
            claims = check(token)
        except InvalidToken as exc:
            raise NotAuthorizedException(str(exc)) from None
        return {"request_id": request_id, "user_id": claims.user_id}

    return Litestar(route_handlers=[read], openapi_config=None)


if __name__ == "__main__":
    secret = os.environ["JHAAS_JWT_SECRET"].encode()
    full = (sys.argv[2] if len(sys.argv) > 2 else "full") == "full"
    tokens = BearerTokens(secret, issuer=os.environ["JHAAS_PUBLIC_URL"])
    app = create_bare_app(tokens, full=full)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
