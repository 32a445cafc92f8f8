"""nftables sync without a kernel: the generated table, element batches, nested networks,
expiry, bounded batches, and what a failing nft call leaves behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rempart.client import Client
from rempart.config import ConfigError, load_settings
from rempart.engine.events import ListAdded, ListRemoved
from rempart.engine.lists import ListEntry
from rempart.firewall.cli import ListPoller, entries_of
from rempart.firewall.metrics import NftCollector
from rempart.firewall.ruleset import (
    BATCH_STATEMENT,
    MAX_TIMEOUT_S,
    Batch,
    SetName,
    element_of,
    element_text,
    table_script,
)
from rempart.firewall.runner import NftError, NftRunner
from rempart.firewall.settings import NftSettings
from rempart.firewall.sync import NftSync
from rempart.firewall.wanted import NET_MARGIN_S, Wanted
from rempart.model import ListName

NOW = 1_000_000.0
B4A, B4N = SetName("block", 4, False), SetName("block", 4, True)
B6A, A4A = SetName("block", 6, False), SetName("allow", 4, False)


def entry(kind: str, value: str, expires: float = 0.0) -> ListEntry:
    return ListEntry(kind, value, expires, "test", NOW)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def make_sync(command: tuple[str, ...] = ("false",), **knobs: object) -> tuple[NftSync, Clock]:
    clock = Clock()
    settings = NftSettings(command=command, **knobs)  # type: ignore[arg-type]
    return NftSync(settings, lambda: [], NftRunner(command, 5), clock), clock


# --- elements and the table -------------------------------------------------------------------
def test_only_addresses_and_networks_are_elements() -> None:
    assert element_of(ListName.BLOCK, entry("ip", "192.0.2.7")) == (B4A, "192.0.2.7")
    assert element_of(ListName.BLOCK, entry("netmask", "192.0.2.0/24")) == (
        B4N,
        "192.0.2.0/24",
    )
    assert element_of(ListName.BLOCK, entry("ip", "2001:db8::1")) == (B6A, "2001:db8::1")
    assert element_of(ListName.BLOCK, entry("ip", "fe80::1%eth0")) is None
    assert element_of(ListName.ALLOW, entry("ip", "192.0.2.7"))[0] == A4A  # type: ignore[index]
    for kind, value in (("login", "bob"), ("ip_login", "192.0.2.7|bob"), ("ja3", "ab12")):
        assert element_of(ListName.BLOCK, entry(kind, value)) is None


def test_element_timeouts_round_up_and_are_capped() -> None:
    assert element_text(B4A, "192.0.2.7", 0, NOW) == "192.0.2.7"
    assert element_text(B4A, "192.0.2.7", NOW + 59.2, NOW) == "192.0.2.7 timeout 60s"
    assert element_text(B4N, "10.0.0.0/8", NOW + 0.01, NOW) == "10.0.0.0/8 timeout 1s"
    far = element_text(B4A, "192.0.2.7", NOW + 1e12, NOW)
    assert far == f"192.0.2.7 timeout {MAX_TIMEOUT_S}s"


def test_table_script_replaces_the_table_with_allow_rules_before_block_rules() -> None:
    settings = NftSettings(table="edge", hook="forward", priority=-150, action="reject")
    script = table_script(settings, {B4A: {"192.0.2.7": NOW + 30}}, NOW)
    lines = script.splitlines()
    assert lines[:3] == ["table inet edge {}", "delete table inet edge", "table inet edge {"]
    assert "type filter hook forward priority -150; policy accept;" in script
    assert '\t\tiifname "lo" accept' in script
    rules = [line.strip() for line in lines if "saddr @" in line]
    assert [r.split()[-1] for r in rules[:4]] == ["accept"] * 4
    assert all(r.endswith("reject with icmpx admin-prohibited") for r in rules[4:])
    assert len(rules) == 8
    assert "set block4_nets { type ipv4_addr; flags interval, timeout; }" in script
    assert lines[-1] == "add element inet edge block4_addrs { 192.0.2.7 timeout 30s }"
    drop = table_script(NftSettings(), {}, NOW)
    assert "ip saddr @block4_addrs counter drop" in drop and "add element" not in drop


def test_batch_writes_deletes_before_adds_in_bounded_statements() -> None:
    batch = Batch()
    for i in range(BATCH_STATEMENT + 1):
        batch.add(B4A, f"10.0.{i // 256}.{i % 256}", 0)
    batch.delete(B4N, "10.9.0.0/16")
    lines = batch.script("rempart", NOW).splitlines()
    assert lines[0] == "delete element inet rempart block4_nets { 10.9.0.0/16 }"
    assert [line.split(" {")[0] for line in lines[1:]] == [
        "add element inet rempart block4_addrs"
    ] * 2
    assert len(batch) == BATCH_STATEMENT + 2
    assert Batch().script("rempart", NOW) == ""


# --- nested networks and expiry ---------------------------------------------------------------
def test_a_wider_network_hides_narrower_ones_until_it_goes() -> None:
    wanted = Wanted()
    wanted.put(B4N, "10.1.0.0/16", 0)
    wanted.put(B4N, "10.1.2.0/24", 0)
    assert wanted.target(B4N, "10.1.2.0/24", NOW) is None  # inside the /16
    wanted.dirty.clear()
    wanted.put(B4N, "10.0.0.0/8", NOW + 100)
    # the covered networks come before the network covering them: their deletes go first
    assert list(wanted.dirty)[-1] == (B4N, "10.0.0.0/8")
    assert set(wanted.dirty) == {(B4N, n) for n in ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24")}
    assert wanted.installable(NOW)[B4N] == {"10.0.0.0/8": NOW + 100}
    wanted.dirty.clear()
    wanted.discard(B4N, "10.0.0.0/8")
    assert next(iter(wanted.dirty)) == (B4N, "10.0.0.0/8")
    assert wanted.installable(NOW)[B4N] == {"10.1.0.0/16": 0}


def test_networks_retire_before_their_expiry_and_uncover_the_narrower() -> None:
    wanted = Wanted()
    wanted.put(B4N, "10.0.0.0/8", NOW + 10)
    wanted.put(B4N, "10.3.0.0/16", NOW + 100)
    wanted.put(B4A, "192.0.2.1", NOW + 10)
    wanted.dirty.clear()
    assert wanted.expire(NOW + 10 - NET_MARGIN_S - 0.1) == 0
    assert wanted.expire(NOW + 10 - NET_MARGIN_S) == 1  # the /8, a margin early
    assert list(wanted.dirty) == [(B4N, "10.0.0.0/8"), (B4N, "10.3.0.0/16")]
    assert wanted.target(B4N, "10.3.0.0/16", NOW + 9.5) == NOW + 100
    assert wanted.expire(NOW + 10) == 1  # the address, at its expiry
    assert len(wanted) == 1


def test_a_renewed_entry_is_not_expired_by_its_old_expiry() -> None:
    wanted = Wanted()
    wanted.put(B4A, "192.0.2.1", NOW + 10)
    wanted.put(B4A, "192.0.2.1", NOW + 50)
    assert wanted.expire(NOW + 20) == 0
    assert wanted.target(B4A, "192.0.2.1", NOW + 20) == NOW + 50


def test_ipv6_nesting() -> None:
    name = SetName("block", 6, True)
    wanted = Wanted()
    wanted.put(name, "2001:db8:1::/48", 0)
    wanted.put(name, "2001:db8::/32", 0)
    assert wanted.installable(NOW)[name] == {"2001:db8::/32": 0}


# --- the sync's batches -----------------------------------------------------------------------
def test_events_become_changes_of_the_installed_elements() -> None:
    sync, clock = make_sync()
    sync.listener(ListAdded(NOW, ListName.BLOCK, entry("ip", "192.0.2.7", NOW + 60), "api"))
    sync.listener(ListAdded(NOW, ListName.BLOCK, entry("login", "bob"), "api"))
    assert sync.pending == 1
    batch, _ = sync.next_batch(clock.now)
    assert batch.script("rempart", clock.now) == (
        "add element inet rempart block4_addrs { 192.0.2.7 timeout 60s }\n"
    )
    sync.installed[B4A]["192.0.2.7"] = NOW + 60  # as a successful flush records it
    # a new expiry: delete and add again (an add alone keeps the old timeout on older kernels)
    sync.put(ListName.BLOCK, entry("ip", "192.0.2.7", NOW + 600))
    batch, _ = sync.next_batch(clock.now)
    assert batch.deletes == {B4A: ["192.0.2.7"]}
    assert batch.adds == {B4A: [("192.0.2.7", NOW + 600)]}
    sync.installed[B4A]["192.0.2.7"] = NOW + 600
    sync.listener(ListRemoved(NOW, ListName.BLOCK, entry("ip", "192.0.2.7"), "api"))
    batch, _ = sync.next_batch(clock.now)
    assert batch.deletes == {B4A: ["192.0.2.7"]} and not batch.adds


def test_an_address_about_to_expire_is_left_to_the_kernel() -> None:
    sync, clock = make_sync()
    sync.installed[B4A]["192.0.2.7"] = NOW + 0.5
    sync.remove(ListName.BLOCK, entry("ip", "192.0.2.7"))
    sync.wanted.put(B4A, "192.0.2.7", NOW + 0.5)
    sync.wanted.discard(B4A, "192.0.2.7")
    batch, _ = sync.next_batch(clock.now)
    assert len(batch) == 0  # deleting it could fail the whole batch a moment later
    assert sync.installed_count == 0  # and it is no longer counted as installed


def test_batches_are_bounded() -> None:
    sync, clock = make_sync(batch_max=100)
    for i in range(250):
        sync.put(ListName.BLOCK, entry("ip", f"10.0.{i // 256}.{i % 256}"))
    sizes = []
    while sync.pending:
        batch, _ = sync.next_batch(clock.now)
        sizes.append(len(batch))
    assert sizes == [100, 100, 50]


def test_a_failing_nft_keeps_the_changes_and_asks_for_a_resync() -> None:
    sync, _ = make_sync(("false",))
    sync.need_resync = False
    sync.put(ListName.BLOCK, entry("ip", "192.0.2.7"))
    assert asyncio.run(sync.flush()) is False
    assert sync.pending == 1 and sync.need_resync and sync.failures == 1
    assert sync.installed_count == 0


def test_a_missing_nft_binary_is_an_nft_error(tmp_path: Path) -> None:
    runner = NftRunner([str(tmp_path / "no-such-nft")])
    with pytest.raises(NftError, match="cannot run"):
        asyncio.run(runner.apply("list ruleset\n"))


def test_a_failed_resync_is_retried_from_the_lists() -> None:
    sync, _ = make_sync(("false",))
    sync.source = lambda: [(ListName.BLOCK, entry("ip", "192.0.2.7"))]
    assert asyncio.run(sync.resync()) is False
    assert sync.need_resync and sync.wanted.target(B4A, "192.0.2.7", NOW) == 0


def test_metrics_show_the_sync_figures() -> None:
    sync, _ = make_sync()
    sync.elements_synced, sync.failures, sync.last_sync = 42, 3, NOW
    families = {f.name: f.samples[0].value for f in NftCollector(sync).collect()}
    assert families["rempart_nft_elements_synced"] == 42
    assert families["rempart_nft_failures"] == 3
    assert families["rempart_nft_last_sync_timestamp_seconds"] == NOW


# --- configuration and the separate process ---------------------------------------------------
def test_the_section_defaults_off_and_checks_its_knobs(tmp_path: Path) -> None:
    assert load_settings(None).section(NftSettings).enabled is False
    path = tmp_path / "rempart.toml"
    bad = {
        '[nftables]\nhook = "prerouting"\naction = "reject"\n': "nftables.action",
        "[nftables]\ncommand = []\n": "nftables.command",
        '[nftables]\ntable = "no such"\n': "nftables.table",
        '[nftables]\nhook = "output"\n': "nftables.hook",
    }
    for text, key in bad.items():
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_settings(str(path))
        assert caught.value.key == key, text
    path.write_text('[nftables]\nenabled = true\ncommand = ["sudo", "-n", "nft"]\n')
    assert load_settings(str(path)).section(NftSettings).command == ("sudo", "-n", "nft")


def test_getbl_records_become_address_and_network_entries() -> None:
    records = [
        {"ip": "192.0.2.7/32", "expiration": "+infinity", "reason": "x"},
        {"ip": "198.51.100.0/24", "expiration": "2026-Dec-01 09:33:38", "reason": "x"},
        {"ip": "2001:db8::1/128", "expiration": "+infinity", "reason": "x"},
        {"login": "bob", "expiration": "+infinity", "reason": "x"},
        {"ip": "not an address", "expiration": "+infinity", "reason": "x"},
    ]
    found = entries_of(ListName.BLOCK, records, NOW)
    assert {(k[1], k[2]): e.expires for k, e in found.items()} == {
        ("ip", "192.0.2.7"): 0.0,
        ("netmask", "198.51.100.0/24"): 1796117618.0,
        ("ip", "2001:db8::1"): 0.0,
    }


def test_changes_made_while_a_resync_reads_the_lists_are_kept() -> None:
    sync, _ = make_sync(("false",))
    listed = [(ListName.BLOCK, entry("ip", f"10.0.{i // 256}.{i % 256}")) for i in range(12_000)]
    sync.source = lambda: listed

    async def meanwhile() -> None:
        await asyncio.sleep(0)  # the resync has read a first slice and yielded
        sync.put(ListName.BLOCK, entry("ip", "192.0.2.99"))
        sync.remove(ListName.BLOCK, entry("ip", "10.0.0.0"))

    async def both() -> None:
        await asyncio.gather(sync.resync(), meanwhile())

    asyncio.run(both())
    assert sync.wanted.target(B4A, "192.0.2.99", NOW) == 0
    assert sync.wanted.target(B4A, "10.0.0.0", NOW) is None
    assert sync.wanted.target(B4A, "10.0.46.223", NOW) == 0  # the last one read
    assert sync._replay is None


def test_serve_refuses_to_start_without_the_nft_command(tmp_path: Path) -> None:
    from rempart.preflight import preflight

    path = tmp_path / "rempart.toml"
    path.write_text('[nftables]\nenabled = true\ncommand = ["/nonexistent/nft"]\n')
    with pytest.raises(ConfigError) as caught:
        preflight(load_settings(str(path)))
    assert caught.value.key == "nftables.command" and "nftables" in caught.value.message
    path.write_text('[nftables]\nenabled = false\ncommand = ["/nonexistent/nft"]\n')
    preflight(load_settings(str(path)))  # off: not looked for


def test_the_poller_hands_differences_to_the_sync() -> None:
    poller = ListPoller(Client("http://127.0.0.1:1", "unused"), NftSettings())
    first = entries_of(
        ListName.BLOCK,
        [
            {"ip": "192.0.2.7/32", "expiration": "+infinity"},
            {"ip": "198.51.100.0/24", "expiration": "+infinity"},
        ],
        NOW,
    )
    assert poller.apply(first) == 2
    assert poller.sync.wanted.target(B4A, "192.0.2.7", NOW) == 0
    assert poller.apply(first) == 0  # nothing changed, nothing handed over
    second = entries_of(
        ListName.BLOCK, [{"ip": "192.0.2.7/32", "expiration": "2026-Dec-01 09:33:38"}], NOW
    )
    assert poller.apply(second) == 2  # a new expiry and a removal
    assert poller.sync.wanted.target(B4N, "198.51.100.0/24", NOW) is None
    assert sorted(e.value for _, e in poller.source()) == ["192.0.2.7"]
