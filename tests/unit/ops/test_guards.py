"""Operator-input guards: the client behind a trusted proxy, wide list entries, API password."""

from __future__ import annotations

import pytest

from rempart.adapters.sources import TrustedProxies
from rempart.config import ConfigError, from_mapping
from rempart.httpserver import HTTPError, Request
from rempart.ops.guards import check_api_password, check_wide_entry, client_address
from rempart.ops.settings import OpsSettings

PROXIES = TrustedProxies(["10.0.0.0/8", "fd00::/8"])


def req(peer: str, forwarded: str = "") -> Request:
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return Request("POST", "/ops/login", "", headers, b"", peer)


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    assert client_address(req("10.1.2.3", "203.0.113.9"), PROXIES) == "203.0.113.9"
    assert client_address(req("10.1.2.3", "198.51.100.1, 10.9.9.9"), PROXIES) == "198.51.100.1"
    # Spoofed left-most entries are ignored: the right-most untrusted hop is the client.
    assert client_address(req("10.1.2.3", "1.1.1.1, 203.0.113.9"), PROXIES) == "203.0.113.9"
    assert client_address(req("192.0.2.50", "203.0.113.9"), PROXIES) == "192.0.2.50"
    none = TrustedProxies([])  # the default
    assert client_address(req("10.1.2.3", "203.0.113.9"), none) == "10.1.2.3"
    assert client_address(req("10.1.2.3", "not-an-ip"), PROXIES) == "10.1.2.3"
    assert client_address(req("fd00::1", "2001:db8::7"), PROXIES) == "2001:db8::7"


@pytest.mark.parametrize("value", ["0.0.0.0/0", "10.0.0.0/8", "::/0", "2001:db8::/32"])
def test_wide_entries_need_confirmation(value: str) -> None:
    with pytest.raises(HTTPError) as refused:
        check_wide_entry("netmask", value, False, 8, 32)
    assert refused.value.status == 400 and "confirm" in refused.value.reason
    check_wide_entry("netmask", value, True, 8, 32)  # confirmed: accepted


@pytest.mark.parametrize("value", ["10.0.0.0/9", "192.0.2.0/24", "2001:db8::/33", "192.0.2.1"])
def test_narrower_entries_need_no_confirmation(value: str) -> None:
    check_wide_entry("netmask" if "/" in value else "ip", value, False, 8, 32)


def test_confirm_prefixes_and_trusted_proxies_are_configurable() -> None:
    s = OpsSettings.of(
        from_mapping({"ops": {"trusted_proxies": ["127.0.0.1/32"], "confirm_prefix_v4": 16}})
    )
    assert s.confirm_prefix_v4 == 16 and s.confirm_prefix_v6 == 32
    assert s.trusted_proxies == ["127.0.0.1/32"]
    with pytest.raises(ConfigError, match="trusted_proxies"):
        OpsSettings.of(from_mapping({"ops": {"trusted_proxies": ["not a network"]}}))
    with pytest.raises(ConfigError, match="confirm_prefix_v6"):
        OpsSettings.of(from_mapping({"ops": {"confirm_prefix_v6": 129}}))


@pytest.mark.parametrize(
    "password", ["abc", "fifteen-chars!!", "aaaaaaaaaaaaaaaaaaaa", "abababab12121212"]
)
def test_weak_api_passwords_are_refused(password: str) -> None:
    with pytest.raises(SystemExit, match="API password"):
        check_api_password(password, "REMPART_API_PASSWORD")


def test_generated_length_passwords_pass() -> None:
    check_api_password("Zq3-vX9_kP2mL7tR8wY4nB6c", "REMPART_API_PASSWORD")
