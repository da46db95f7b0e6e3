"""Who is on the other end: the TCP peer, or what trusted proxies say it is.

Behind an ingress every connection comes from the proxy, so throttling and
the access log would see one address for everybody. `X-Forwarded-For` names
the client, but anyone can send that header: it is read only when the TCP peer
is one of `JHAAS_TRUSTED_PROXIES`, and then from the right, where each trusted
proxy appended the address it saw. The first address that is not a trusted
proxy is the client; whatever stands left of it came from the client itself,
so a forged entry there changes nothing. An entry that is not an address ends
the walk at the last proxy believed.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar.types import Scope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CLIENT_KEY = "jhaas_client_address"
_FORWARDED_FOR = b"x-forwarded-for"


class TrustedProxies:
    """The networks whose forwarded headers are believed.

    A plain class, not a tuple of networks: Litestar builds a decoder for every
    type a handler's dependencies mention, and msgspec has none for a union of
    the two ipaddress network types.
    """

    __slots__ = ("networks",)

    def __init__(self, networks: tuple[IPNetwork, ...] = ()) -> None:
        self.networks = networks

    def __contains__(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustedProxies) and other.networks == self.networks

    def __hash__(self) -> int:
        return hash(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({', '.join(map(str, self.networks))})"


def parse_trusted_proxies(text: str) -> TrustedProxies:
    """`10.0.0.0/8, 192.0.2.7` -> networks; ValueError naming an entry that is neither."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (CIDR)") from None
    return TrustedProxies(tuple(networks))


def _address(text: str) -> IPAddress | None:
    try:
        found = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _forwarded_for(scope: Scope) -> list[str]:
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name.lower() == _FORWARDED_FOR:
            hops.extend(value.decode("latin-1").split(","))
    return hops


def resolve_client(peer: str, forwarded_for: list[str], proxies: TrustedProxies) -> str:
    """The client's address given the TCP peer and the X-Forwarded-For entries."""
    peer_address = _address(peer)
    if peer_address not in proxies:
        return str(peer_address) if peer_address is not None else peer
    client: IPAddress | None = peer_address
    for hop in reversed(forwarded_for):
        address = _address(hop)
        if address is None:
            break
        client = address
        if address not in proxies:
            break
    return str(client)


def client_address(scope: Scope, proxies: TrustedProxies) -> str:
    """The client of this request, worked out once and kept with the request."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get(_CLIENT_KEY)
    if isinstance(found, str):
        return found
    peer = scope.get("client") or ("unknown", 0)
    address = resolve_client(str(peer[0]), _forwarded_for(scope), proxies)
    state[_CLIENT_KEY] = address
    return address
