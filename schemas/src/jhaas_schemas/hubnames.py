"""How a gateway user is named inside a course hub.

Events carry user ids, never names, and a user's sign-in name may change or
hold characters a URL or a system account cannot. So every hub knows a person
by a name derived from their gateway user id alone: the same in every course,
stable for the person's whole life, and safe as a URL path segment and as a
POSIX account name (lower-case letters and digits, starting with a letter, 16
characters, so a per-hub prefix still fits Linux's 32). The gateway's userinfo
hands it to the hub as `preferred_username`; the deployer computes the same from
the ids in participant events. 75 bits of SHA-256: no two users collide among
any number of people a university has.
"""

from __future__ import annotations

import base64
import hashlib
import re

HUB_USERNAME = re.compile(r"^u[a-z2-7]{15}$")
_DOMAIN = b"jhaas-hub-user:"


def hub_username(user_id: str) -> str:
    """The name a course hub knows the gateway user `user_id` by."""
    digest = hashlib.sha256(_DOMAIN + user_id.encode()).digest()
    return "u" + base64.b32encode(digest).decode("ascii").lower()[:15]
