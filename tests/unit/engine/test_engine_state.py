"""The engine as sole writer: counter resets from the login index, peer reports, the families
table, and the journal record schema round trip."""

from __future__ import annotations

import pytest

from rempart.config import from_mapping
from rempart.engine.engine import Engine
from rempart.engine.events import CountersReset, ListAdded, ListRemoved, PostureChanged
from rempart.engine.families import FAMILY_SPECS, KeyFamily
from rempart.engine.lists import ListEntry
from rempart.engine.posture import PostureRecord, PostureSource
from rempart.engine.records import change_from_record, event_record
from rempart.model import Attempt, ListName, Outcome, Posture, Protocol

T0 = 1_800_000_000.0


def _fail(engine: Engine, ip: str, login: str = "bob@example.org") -> None:
    engine.report(Attempt(login, ip, Protocol.IMAP), Outcome(success=False), T0)


def test_reset_login_clears_its_pair_keys_without_scanning() -> None:
    engine = Engine.in_memory()
    for ip in ("192.0.2.1", "192.0.2.2", "198.51.100.3"):
        _fail(engine, ip)
    _fail(engine, "192.0.2.1", "eve@example.org")
    assert engine.reset(login="bob@example.org", now=T0) == 4  # login + three ip+login keys
    assert "bob@example.org" not in engine._pair_keys
    assert (
        engine.states.get(FAMILY_SPECS[KeyFamily.IP_LOGIN].prefix + "192.0.2.1|eve@example.org")
        >= 0
    )


def test_the_login_index_follows_lru_evictions() -> None:
    engine = Engine(from_mapping({"engine": {"max_tracked_keys": 1000}}))
    for i in range(400):
        _fail(engine, f"10.0.{i // 250}.{i % 250}")
    # Only the latest pair keys are still tracked, and the index names exactly those.
    index = engine._pair_keys["bob@example.org"]
    keys = {index} if isinstance(index, str) else index
    assert keys and all(engine.states.get(k) >= 0 for k in keys)
    tracked = [
        k for k in engine.states.tracked() if k[0] == FAMILY_SPECS[KeyFamily.IP_LOGIN].prefix
    ]
    assert sorted(tracked) == sorted(keys)


def test_peer_reports_count_in_windows_but_not_in_this_nodes_reports() -> None:
    engine = Engine.in_memory()
    events: list[object] = []
    engine.listeners.append(events.append)
    attempt = Attempt("bob@example.org", "192.0.2.1", Protocol.IMAP)
    engine.apply_peer_report(attempt, Outcome(success=False), T0)
    assert engine.snapshot().failures == 0 and events == []
    assert engine.key_counts(login="bob@example.org", now=T0)["failures"] == 1


def test_families_table_orders_keys_and_names_rule_families() -> None:
    assert [f.value for f in KeyFamily] == list(range(len(KeyFamily)))
    prefixes = [s.prefix for s in FAMILY_SPECS.values()]
    assert len(set(prefixes)) == len(prefixes)
    engine = Engine.in_memory()
    _, _, keys = engine._derive_keys(Attempt("bob@example.org", "2001:db8::1", Protocol.WEB))
    assert len(keys) == len(KeyFamily)
    assert keys[KeyFamily.LOGIN] == "lbob@example.org"


@pytest.mark.parametrize(
    "event",
    [
        ListAdded(T0, ListName.BLOCK, ListEntry("ip", "192.0.2.1", T0 + 60, "why", T0), "api"),
        ListRemoved(T0, ListName.ALLOW, ListEntry("login", "a@b", 0.0, "x", T0), "console:ann"),
        PostureChanged(
            T0,
            Posture.NORMAL,
            PostureRecord(
                Protocol.IMAP, Posture.STRICT, PostureSource.OPERATOR, "api", "w", T0, T0 + 5, True
            ),
        ),
        CountersReset(T0, "a@b", "192.0.2.1", 0),
    ],
)
def test_change_records_round_trip(event: object) -> None:
    assert change_from_record(event_record(event)) == event  # type: ignore[arg-type]


def test_malformed_change_records_are_refused() -> None:
    with pytest.raises(ValueError, match="list_add"):
        change_from_record({"kind": "list_add", "ts": T0})
    with pytest.raises(ValueError, match="not changes"):
        change_from_record({"kind": "decision", "ts": T0})


T = 1_800_000_000.0


def _block(kind: str, value: str, created: float) -> ListEntry:
    return ListEntry(kind, value, created + 900, "ip_login_failures", created)


def test_a_lifted_block_does_not_come_back_from_a_peer_late() -> None:
    """wforce's regression suite (Replication::test_Reset) on three Redis nodes: a reset on one
    node was undone a second later by another node's block, made before the reset but streamed
    after it."""
    node1, node3 = Engine.in_memory(), Engine.in_memory()
    late = _block("ip_login", "192.0.2.7|bob@example.org", T)  # node 2's, before the reset
    # node 1 resets before node 2's block reached it: nothing to lift yet.
    assert node1.lift_blocks(login="bob@example.org", ip="192.0.2.7", now=T + 1) == []
    assert node1.apply_peer_list_add(ListName.BLOCK, late) is False
    assert node1.list_entries(ListName.BLOCK, T + 2) == []
    # node 3 had node 2's block; node 1's reset reaches it, then the block again.
    assert node3.apply_peer_list_add(ListName.BLOCK, late) is True
    node3.apply_peer_reset(login="bob@example.org", ip="192.0.2.7", at=T + 1)
    assert node3.list_entries(ListName.BLOCK, T + 2) == []
    assert node3.apply_peer_list_add(ListName.BLOCK, late) is False
    # A block made after the reset (the attacker carries on) is honoured everywhere.
    fresh = _block("ip_login", "192.0.2.7|bob@example.org", T + 5)
    assert node1.apply_peer_list_add(ListName.BLOCK, fresh) is True
    assert node3.apply_peer_list_add(ListName.BLOCK, fresh) is True
    assert node1.list_entries(ListName.BLOCK, T + 6) == [fresh]


def test_a_peer_removal_outranks_an_older_copy_and_a_local_add_clears_it() -> None:
    node = Engine.in_memory()
    old = _block("ip", "198.51.100.4", T)
    node.apply_peer_list_remove(ListName.BLOCK, "ip", "198.51.100.4", at=T + 1)
    assert node.apply_peer_list_add(ListName.BLOCK, old) is False
    mine = _block("ip", "198.51.100.4", T)  # an operator re-adds it here: it stands
    node.add_entry(ListName.BLOCK, mine)
    assert node.list_entries(ListName.BLOCK, T + 2) == [mine]


def test_a_success_does_not_track_an_ip_login_key() -> None:
    """The ip+login family counts failures only: a success leaves no empty ring behind, and
    a failure on the pair afterwards is still counted."""
    engine = Engine.in_memory()
    attempt = Attempt("carol@example.org", "192.0.2.9", Protocol.IMAP)
    engine.report(attempt, Outcome(success=True), T0)
    pair = FAMILY_SPECS[KeyFamily.IP_LOGIN].prefix + "192.0.2.9|carol@example.org"
    assert engine.states.get(pair) == -1 and "carol@example.org" not in engine._pair_keys
    assert engine.states.get("i192.0.2.9") >= 0  # the address itself is tracked
    engine.report(attempt, Outcome(success=False), T0 + 1)
    assert engine.key_counts(login="carol@example.org", ip="192.0.2.9", now=T0 + 1) == {
        "failures": 1
    }
