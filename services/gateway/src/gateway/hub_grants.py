"""Taking back what the gateway issued to one person for one course's hub.

When a participant is removed or leaves, or a tutor loses the role, the hub must
stop trusting what the gateway gave that person for it: the OAuth provider
(gateway/oauth*.py) fills this in, revoking the authorization codes and tokens
it issued to (user_id, request_id). The course controllers call it after
participant-svc has committed the change, so a refused change revokes nothing.
"""

from __future__ import annotations

from gateway.context import Gateway


async def revoke_hub_grants(gateway: Gateway, *, user_id: str, request_id: str) -> None:
    """Revoke the gateway's codes and tokens of `user_id` for the hub of `request_id`.

    A no-op until the OAuth provider exists; then it is the one place to fill in.
    """
    del gateway, user_id, request_id
