"""Familiarity: learning from successes, decay by age, bounded memory per account, and the
persistence hint `learn` gives its caller."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.engine.familiarity import Familiarity

DAY = 86400.0
T0 = 1_800_000_000.0


def fresh(**kw: float) -> Familiarity:
    args = {"ttl": 30 * DAY, "max_networks": 3, "max_devices": 2, **kw}
    return Familiarity(args["ttl"], int(args["max_networks"]), int(args["max_devices"]))


def test_a_success_makes_the_network_familiar_until_the_ttl() -> None:
    fam = fresh()
    assert not fam.known_account("a@example.org")
    assert fam.learn("a@example.org", "n4:192.0.2", T0)
    assert fam.known_account("a@example.org")
    assert fam.familiar("a@example.org", "n4:192.0.2", T0 + 30 * DAY)
    assert not fam.familiar("a@example.org", "n4:192.0.2", T0 + 30 * DAY + 1)
    assert not fam.familiar("a@example.org", "n4:198.51.100", T0)  # another network
    assert not fam.familiar("b@example.org", "n4:192.0.2", T0)  # another account


def test_a_new_success_renews_an_expired_entry() -> None:
    fam = fresh()
    fam.learn("a@example.org", "n4:192.0.2", T0)
    fam.learn("a@example.org", "n4:192.0.2", T0 + 40 * DAY)
    assert fam.familiar("a@example.org", "n4:192.0.2", T0 + 60 * DAY)


def test_learn_asks_for_persistence_when_new_or_an_hour_old() -> None:
    fam = fresh()
    assert fam.learn("a@example.org", "dlaptop", T0) is True  # new
    assert fam.learn("a@example.org", "dlaptop", T0 + 60) is False  # refreshed in memory only
    assert fam.learn("a@example.org", "dlaptop", T0 + 3000) is False  # 2940 s after the last
    assert fam.learn("a@example.org", "dlaptop", T0 + 6600) is True  # an hour after the last
    assert fam.familiar("a@example.org", "dlaptop", T0 + 6600 + 30 * DAY)


def test_a_full_account_forgets_its_oldest_network_and_keeps_devices_apart() -> None:
    fam = fresh()
    login = "a@example.org"
    for i in range(3):
        fam.learn(login, f"n4:10.0.{i}", T0 + i)
    fam.learn(login, "dphone", T0)
    fam.learn(login, "dlaptop", T0 + 1)
    fam.learn(login, "n4:10.0.0", T0 + 10)  # the oldest network seen again: now the newest
    fam.learn(login, "n4:10.0.9", T0 + 11)  # a fourth network: 10.0.1 is the oldest
    assert [fam.familiar(login, f"n4:10.0.{i}", T0 + 20) for i in (0, 1, 2, 9)] == [
        True,
        False,
        True,
        True,
    ]
    fam.learn(login, "dtablet", T0 + 12)  # a third device: the phone goes
    assert not fam.familiar(login, "dphone", T0 + 20)
    assert fam.familiar(login, "dlaptop", T0 + 20) and fam.familiar(login, "dtablet", T0 + 20)
    assert len(fam.accounts[login]) == 3 + 2


def test_restored_entries_decay_like_learned_ones() -> None:
    fam = fresh(ttl=DAY)
    fam.restore("a@example.org", "n4:192.0.2", T0 - 2 * DAY)  # loaded from the store
    fam.restore("a@example.org", "dlaptop", T0 - 60)
    assert fam.known_account("a@example.org")
    assert not fam.familiar("a@example.org", "n4:192.0.2", T0)
    assert fam.familiar("a@example.org", "dlaptop", T0)


def _reference_learn(
    seen: dict[str, float], marker: str, now: float, limits: dict[str, int]
) -> None:
    """What `learn` keeps, written plainly: the entry, then the newest `limit` of its kind."""
    new = marker not in seen
    seen[marker] = now
    if new:
        same = sorted((m for m in seen if m[0] == marker[0]), key=seen.__getitem__)
        for old in same[: max(0, len(same) - limits[marker[0]])]:
            del seen[old]


@settings(max_examples=300, deadline=None)
@given(
    restored=st.lists(
        st.tuples(st.sampled_from("nd"), st.integers(0, 9), st.integers(0, 50)), max_size=12
    ),
    learned=st.lists(
        st.tuples(st.sampled_from("nd"), st.integers(0, 9), st.integers(0, 50)), max_size=30
    ),
    max_networks=st.integers(1, 4),
    max_devices=st.integers(1, 4),
)
def test_learning_keeps_the_newest_entries_of_each_kind(
    restored: list[tuple[str, int, int]],
    learned: list[tuple[str, int, int]],
    max_networks: int,
    max_devices: int,
) -> None:
    """Whatever was restored (possibly beyond the limits: a smaller limit configured since),
    each new entry leaves its kind with the newest `limit` entries, as a plain sort would."""
    fam = fresh(max_networks=max_networks, max_devices=max_devices)
    login = "a@example.org"
    expected: dict[str, float] = {}
    for kind, value, at in restored:
        fam.restore(login, f"{kind}{value}", T0 + at)
        expected[f"{kind}{value}"] = T0 + at
    limits = {"n": max_networks, "d": max_devices}
    for kind, value, at in learned:
        fam.learn(login, f"{kind}{value}", T0 + 100 + at)
        _reference_learn(expected, f"{kind}{value}", T0 + 100 + at, limits)
        assert fam.accounts[login] == expected
