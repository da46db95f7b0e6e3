"""The client's address: forwarded headers count only from trusted proxies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.client_address import TrustedProxies, parse_trusted_proxies, resolve_client
from gateway.settings import GatewaySettings
from jhaas_runtime.settings import SettingsError

pytestmark = pytest.mark.unit

PROXIES = parse_trusted_proxies("10.0.0.0/8, 192.0.2.1, 2001:db8::/32")
ADDRESSES = st.ip_addresses().map(str)


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert resolve_client("198.51.100.9", ["203.0.113.5"], PROXIES) == "198.51.100.9"
    assert resolve_client("198.51.100.9", ["203.0.113.5"], TrustedProxies()) == "198.51.100.9"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() -> None:
    assert resolve_client("10.1.2.3", ["203.0.113.5"], PROXIES) == "203.0.113.5"
    chain = ["203.0.113.5", "10.9.9.9", " 192.0.2.1 "]
    assert resolve_client("10.1.2.3", chain, PROXIES) == "203.0.113.5"


@given(forged=st.lists(ADDRESSES | st.text(max_size=20), max_size=5))
def test_what_the_client_forwards_itself_changes_nothing(forged: list[str]) -> None:
    # The trusted proxy appended the address it saw; anything left of it is the client's.
    assert resolve_client("10.1.2.3", [*forged, "203.0.113.5"], PROXIES) == "203.0.113.5"


def test_a_broken_entry_ends_the_chain_at_the_last_trusted_proxy() -> None:
    assert resolve_client("10.1.2.3", ["203.0.113.5", "unknown"], PROXIES) == "10.1.2.3"
    assert resolve_client("10.1.2.3", ["203.0.113.5", "10.4.4.4", "x"], PROXIES) == "10.1.2.3"
    assert resolve_client("10.1.2.3", ["203.0.113.5", "x", "10.4.4.4"], PROXIES) == "10.4.4.4"


def test_only_proxies_in_the_chain_gives_the_farthest_one() -> None:
    assert resolve_client("10.1.2.3", ["10.7.7.7", "192.0.2.1"], PROXIES) == "10.7.7.7"
    assert resolve_client("10.1.2.3", [], PROXIES) == "10.1.2.3"


def test_ipv4_mapped_and_ipv6_addresses() -> None:
    assert resolve_client("::ffff:10.1.2.3", ["203.0.113.5"], PROXIES) == "203.0.113.5"
    assert resolve_client("2001:db8::1", ["2001:DB8:FFFF::9", "2a00::1"], PROXIES) == "2a00::1"


def test_settings_name_a_bad_proxy_entry() -> None:
    env = {"JHAAS_JWT_SECRET": "k" * 32, "JHAAS_TRUSTED_PROXIES": "10.0.0.0/8, ingress"}
    with pytest.raises(SettingsError, match=r"JHAAS_TRUSTED_PROXIES.*'ingress'"):
        GatewaySettings.from_env(env)
    env["JHAAS_TRUSTED_PROXIES"] = "10.0.0.0/8,fd00::/8"
    assert len(GatewaySettings.from_env(env).trusted_proxies) == 2
