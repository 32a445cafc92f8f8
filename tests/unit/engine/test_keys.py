"""Key derivation: canonical logins and network keys, including edge cases."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.engine.keys import (
    KeyError_,
    LoginRules,
    _v4,
    canonical_login,
    net_keys,
    subnet_label,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice@Example.ORG ", "alice@example.org"),
        ("alice+news@example.org", "alice@example.org"),
        ("alice+a+b@mail.example.org", "alice@example.org"),
        ("bob", "bob"),
    ],
)
def test_canonical_login(raw: str, expected: str) -> None:
    rules = LoginRules(domain_aliases={"mail.example.org": "example.org"})
    assert canonical_login(raw, rules) == expected


def test_canonical_login_options() -> None:
    assert canonical_login("bob", LoginRules(default_domain="example.org")) == "bob@example.org"
    keep = LoginRules(lowercase=False, fold_plus_tags=False)
    assert canonical_login("Bob+x@Example.org", keep) == "Bob+x@Example.org"


def test_login_over_one_kilobyte_is_rejected() -> None:
    with pytest.raises(KeyError_):
        canonical_login("a" * 1025)
    with pytest.raises(KeyError_):
        canonical_login("é" * 600)  # 1200 bytes in UTF-8


def test_ipv4_keys() -> None:
    k = net_keys("192.0.2.17")
    assert (k.ip, k.v6, k.subnet, k.wide) == ("192.0.2.17", False, "4:192.0.2", "4w:192.0")
    assert subnet_label(k.subnet) == "192.0.2.0/24"


@pytest.mark.parametrize("form", ["::ffff:192.0.2.17", "::FFFF:c000:0211", "[::ffff:192.0.2.17]"])
def test_ipv4_mapped_is_ipv4(form: str) -> None:
    assert net_keys(form) == net_keys("192.0.2.17")


def test_ipv6_forms_share_keys() -> None:
    a = net_keys("2001:db8:0:1::5")
    b = net_keys("2001:0DB8:0000:0001:0000:0000:0000:0005")
    c = net_keys("2001:db8:0:1:ffff::1")  # same /64, other host
    d = net_keys("2001:db8:0:2::5")  # other /64, same /48
    assert a == b
    assert a.ip == "2001:db8:0:1::5"
    assert a.subnet == c.subnet != d.subnet
    assert a.wide == d.wide
    assert subnet_label(a.subnet) == "2001:db8:0:1::/64"
    assert net_keys("fe80::1%eth0").ip == "fe80::1"


@pytest.mark.parametrize(
    "bad", ["", "999.1.1.1", "1.2.3", "01.2.3.4x", "1.2.3.4.5", "::g", "example.org", "1" * 200]
)
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(KeyError_):
        net_keys(bad)


@given(st.binary(min_size=4, max_size=4))
def test_ipv4_keys_from_text_match_the_keys_from_the_packed_address(packed: bytes) -> None:
    """The dotted-quad path cuts strings; the IPv4-mapped path formats the packed bytes."""
    text = socket.inet_ntop(socket.AF_INET, packed)
    assert net_keys(text) == _v4(packed) == net_keys(f"::ffff:{text}")


@pytest.mark.parametrize("text", ["01.2.3.4", "1.2.3", "1.2.3.04", "1.2.3.4.5", "256.1.1.1"])
def test_non_canonical_ipv4_text_is_refused(text: str) -> None:
    with pytest.raises(KeyError_):
        net_keys(text)
