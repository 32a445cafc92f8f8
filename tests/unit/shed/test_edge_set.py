"""The block list as HAProxy enforces it: allow precedence, expiry, IPv4/IPv6, networks."""

from __future__ import annotations

from rempart.engine.lists import ListEntry
from rempart.shed.edge_set import EdgeSet, Net
from rempart.shed.hostile_feed import batches, map_keys

NOW = 1_000_000.0


def entry(kind: str, value: str, expires: float = 0.0) -> ListEntry:
    return ListEntry(kind, value, expires, "test", NOW)


def test_address_and_network_blocks_are_kept_other_kinds_are_not() -> None:
    edge = EdgeSet()
    edge.add(False, entry("ip", "192.0.2.7"), NOW)
    edge.add(False, entry("netmask", "198.51.100.0/24"), NOW)
    edge.add(False, entry("ip", "2001:db8::5"), NOW)
    edge.add(False, entry("netmask", "2001:db8:1::/48"), NOW)
    edge.add(False, entry("login", "alice"), NOW)  # an account, not a source
    edge.add(False, entry("ip_login", "192.0.2.9|alice"), NOW)  # one account from there
    edge.add(False, entry("ja3", "abc"), NOW)
    assert edge.desired() == {"192.0.2.7", "198.51.100.0/24", "2001:db8::5", "2001:db8:1::/48"}
    assert edge.take_touched() == edge.desired()
    assert edge.take_touched() == set()


def test_removal_touches_only_its_key_and_a_shared_key_stays_while_referenced() -> None:
    edge = EdgeSet()
    edge.add(False, entry("ip", "192.0.2.7"), NOW)
    edge.add(False, entry("netmask", "192.0.2.7/32"), NOW)  # the same host, as a network
    edge.add(False, entry("ip", "192.0.2.8"), NOW)
    edge.take_touched()
    edge.remove(False, "ip", "192.0.2.7")
    assert "192.0.2.7" in edge  # the /32 entry still blocks it
    edge.remove(False, "netmask", "192.0.2.7/32")
    assert edge.desired() == {"192.0.2.8"}
    assert edge.take_touched() == {"192.0.2.7"}


def test_allowed_address_is_left_out_and_comes_back_when_the_allow_goes() -> None:
    edge = EdgeSet()
    edge.add(False, entry("ip", "192.0.2.7"), NOW)
    edge.add(True, entry("ip", "192.0.2.7"), NOW)
    assert edge.desired() == set()
    edge.remove(True, "ip", "192.0.2.7")
    assert edge.desired() == {"192.0.2.7"}
    edge.add(True, entry("ip_login", "192.0.2.7|alice"), NOW)  # alice may log in from there
    assert edge.desired() == set()
    edge.remove(True, "ip_login", "192.0.2.7|alice")
    edge.add(True, entry("netmask", "192.0.2.0/24"), NOW)  # a network holding it
    edge.add(False, entry("ip", "192.0.2.200"), NOW)  # added after the allow
    assert edge.desired() == set()
    edge.add(True, entry("login", "alice"), NOW)  # no source: the edge cannot honour it
    edge.add(False, entry("ip", "203.0.113.1"), NOW)
    assert edge.desired() == {"203.0.113.1"}


def test_blocked_network_is_cut_around_allowed_addresses_and_networks() -> None:
    edge = EdgeSet()
    edge.add(False, entry("netmask", "10.0.0.0/24"), NOW)
    edge.add(True, entry("ip", "10.0.0.5"), NOW)
    keys = edge.desired()
    assert "10.0.0.0/24" not in keys
    pieces = [Net.parse(k).network() for k in keys]
    covered = {a for p in pieces for a in p}
    assert len(covered) == 255 and Net.parse("10.0.0.5").network()[0] not in covered
    assert all(p.subnet_of(Net.parse("10.0.0.0/24").network()) for p in pieces)  # type: ignore[arg-type]
    edge.add(True, entry("netmask", "10.0.0.128/25"), NOW)
    covered = {a for k in edge.desired() for a in Net.parse(k).network()}
    assert len(covered) == 127 and max(covered).compressed == "10.0.0.127"
    edge.remove(True, "ip", "10.0.0.5")
    assert edge.desired() == {"10.0.0.0/25"}
    edge.remove(True, "netmask", "10.0.0.128/25")
    assert edge.desired() == {"10.0.0.0/24"}


def test_ipv6_network_with_an_allowed_host() -> None:
    edge = EdgeSet()
    edge.add(False, entry("netmask", "2001:db8::/126"), NOW)
    edge.add(True, entry("ip", "2001:db8::1"), NOW)
    assert edge.desired() == {"2001:db8::", "2001:db8::2/127"}
    edge.add(True, entry("netmask", "10.0.0.0/8"), NOW)  # another family: no effect
    assert edge.desired() == {"2001:db8::", "2001:db8::2/127"}


def test_expiry_of_blocks_and_allows() -> None:
    edge = EdgeSet()
    edge.add(False, entry("ip", "192.0.2.1", NOW + 5), NOW)
    edge.add(False, entry("ip", "192.0.2.2", NOW + 50), NOW)
    edge.add(False, entry("ip", "192.0.2.3", NOW - 1), NOW)  # already over
    edge.add(True, entry("ip", "192.0.2.2", NOW + 10), NOW)
    assert edge.desired() == {"192.0.2.1"}
    assert edge.next_deadline() == NOW + 5
    edge.take_touched()
    assert edge.expire(NOW + 4.9) == 0
    assert edge.expire(NOW + 5) == 1
    assert edge.desired() == set() and edge.take_touched() == {"192.0.2.1"}
    assert edge.expire(NOW + 10) == 1  # the allow expired: the block is back
    assert edge.desired() == {"192.0.2.2"}
    assert edge.expire(NOW + 50) == 1
    assert edge.desired() == set()


def test_replaced_entry_keeps_its_new_expiry() -> None:
    edge = EdgeSet()
    edge.add(False, entry("ip", "192.0.2.1", NOW + 5), NOW)
    edge.add(False, entry("ip", "192.0.2.1", NOW + 60), NOW)  # extended
    assert edge.expire(NOW + 6) == 0
    assert edge.desired() == {"192.0.2.1"}
    edge.add(False, entry("ip", "192.0.2.1"), NOW)  # made permanent
    assert edge.expire(NOW + 61) == 0 and edge.desired() == {"192.0.2.1"}


def test_v4_mapped_addresses_are_plain_v4() -> None:
    edge = EdgeSet()
    edge.add(False, entry("netmask", "::ffff:192.0.2.0/120"), NOW)
    assert edge.desired() == {"192.0.2.0/24"}


def test_given_back_keys_are_pushed_again() -> None:
    edge = EdgeSet()
    edge.add(False, entry("ip", "192.0.2.1"), NOW)
    taken = edge.take_touched()
    edge.give_back(taken)
    assert edge.take_touched() == {"192.0.2.1"}


def test_show_map_parsing_and_batches() -> None:
    answer = "0x55d0c1a0 192.0.2.1 1\n0x55d0c1b0 10.0.0.0/8 1\n\n"
    assert map_keys(answer) == {"192.0.2.1", "10.0.0.0/8"}
    commands = [f"add map /m k{i} 1" for i in range(100)]
    groups = list(batches(commands, 200))
    assert [c for g in groups for c in g] == commands
    assert all(sum(len(c) + 2 for c in g) <= 200 for g in groups) and len(groups) > 1


def test_a_mass_expiry_is_swept_in_bounded_steps() -> None:
    edge = EdgeSet()
    for i in range(50):
        edge.add(False, entry("ip", f"192.0.2.{i}", NOW + 1), NOW)
    assert edge.expire(NOW + 2, limit=20) == 20
    assert len(edge) == 30 and edge.next_deadline() == NOW + 1  # come back at once
    assert edge.expire(NOW + 2, limit=100) == 30 and len(edge) == 0
