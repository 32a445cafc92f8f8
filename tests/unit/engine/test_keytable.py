"""The C key table answers every operation exactly as the reference `PyKeyTable`.

Hypothesis drives both with the same random operation sequences (adds, touches, reads, removals,
evictions of the least recently used key, dumps) over keys of every str kind, and also checks the
reference against a plain model; walks (`begin_walk`/`walk`) interleaved with changes are
checked against their contract on both, since the two may visit in a different order. Without the C table (no compiler at install time) the comparison
is skipped, and fails with REMPART_REQUIRE_COMPILED=1 (CI).
"""

from __future__ import annotations

import array
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.engine.keytable import KeyIndex, PyKeyTable, native_key_table
from tests.conftest import need

# Few keys, so that operations meet the same keys again; every kind of str (1, 2, 4 bytes per
# code point), the empty key, lone surrogates and keys that differ only in their kind's width.
KEYS = st.sampled_from(
    ["", "i192.0.2.1", "lalice@example.org", "l\xe9l\xe8ne", "l\u20ac", "l\U0001f600", "\ud800"]
    + [f"p10.0.0.{n}|u{n}" for n in range(12)]
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), KEYS, st.integers(0, 2**40)),
        st.tuples(st.just("touch"), KEYS),
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("pop"), KEYS),
        st.tuples(st.just("pop_oldest")),
        st.tuples(st.just("dump")),
        st.tuples(st.just("clear")),
    ),
    max_size=300,
)


def run(table: KeyIndex, ops: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        name = op[0]
        try:
            if name == "dump":
                slots = array.array("q")
                slots.frombytes(table.slots())
                out.append((table.tracked(), list(slots), len(table)))
            else:
                out.append(getattr(table, name)(*op[1:]))
        except (KeyError, ValueError) as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


def native() -> type[KeyIndex]:
    found = native_key_table()
    need("compiled", found is not None, "the C key table is not built (pip install .)")
    assert found is not None
    return found


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_c_table_answers_as_the_reference(ops: list[tuple[Any, ...]]) -> None:
    table = native()()
    assert run(table, ops) == run(PyKeyTable(), ops)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_reference_follows_a_plain_model(ops: list[tuple[Any, ...]]) -> None:
    model: dict[str, int] = {}  # insertion order = recency order
    table = PyKeyTable()
    for op, answer in zip(ops, run(table, ops), strict=True):
        name = op[0]
        if name == "add":
            if op[1] in model:
                assert answer == ("ValueError", "the key is already tracked")
            else:
                model[op[1]] = op[2]
        elif name in ("touch", "get"):
            assert answer == model.get(op[1], -1)
            if name == "touch" and op[1] in model:
                model[op[1]] = model.pop(op[1])
        elif name == "pop":
            assert answer == model.pop(op[1], -1)
        elif name == "pop_oldest":
            if model:
                oldest = next(iter(model))
                assert answer == (oldest, model.pop(oldest))
            else:
                assert answer == ("KeyError", "'no key is tracked'")
        elif name == "dump":
            assert answer == (list(model), list(model.values()), len(model))
        elif name == "clear":
            model.clear()


WALK = st.tuples(
    OPS.map(lambda ops: [op for op in ops if op[0] != "clear"]),  # before the walk
    st.lists(
        st.one_of(
            st.tuples(st.just("walk"), st.integers(1, 5)),
            st.tuples(st.just("add"), KEYS, st.integers(0, 2**40)),
            st.tuples(st.just("touch"), KEYS),
            st.tuples(st.just("pop"), KEYS),
            st.tuples(st.just("pop_oldest")),
        ),
        max_size=60,
    ),
)


@pytest.mark.parametrize("kind", ["c", "reference"])
@settings(max_examples=300, deadline=None)
@given(WALK)
def test_a_walk_visits_each_key_of_its_start_once_while_the_table_changes(
    kind: str, case: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]
) -> None:
    """The contract of `KeyIndex.walk` (a counter checkpoint copied between decisions): every
    key tracked from the start of the walk until it is reached is visited once, with its slot
    then; a key added (or added again) during the walk is not."""
    before, during = case
    table = native()() if kind == "c" else PyKeyTable()
    model: dict[str, int] = {}
    for op, answer in zip(before, run(table, before), strict=True):
        if op[0] == "add" and answer is None:
            model[op[1]] = op[2]
        elif op[0] == "touch" and op[1] in model:
            model[op[1]] = model.pop(op[1])
        elif op[0] == "pop":
            model.pop(op[1], None)
        elif op[0] == "pop_oldest" and model:
            del model[next(iter(model))]
    start = list(model)
    assert table.tracked() == start
    pending, visited, order = set(model), set(), []
    table.begin_walk()
    for op in [*during, ("walk", 1000)]:
        name = op[0]
        if name == "walk":
            keys, slots = table.walk(op[1])
            assert len(keys) == len(slots) <= op[1]
            for key, slot in zip(keys, slots, strict=True):
                assert key in pending and key not in visited
                assert slot == model[key]
                pending.discard(key)
                visited.add(key)
                order.append(key)
            if len(keys) < op[1]:
                assert not pending  # done: nothing of the start is left
        elif name == "add":
            if op[1] not in model:
                table.add(op[1], op[2])
                model[op[1]] = op[2]
                pending.discard(op[1])  # added (again) during the walk: not visited
        elif name == "touch":
            table.touch(op[1])
            if op[1] in model:
                model[op[1]] = model.pop(op[1])
        elif name == "pop":
            table.pop(op[1])
            model.pop(op[1], None)
            pending.discard(op[1])
        elif model:
            key, _ = table.pop_oldest()
            assert key == next(iter(model))
            del model[key]
            pending.discard(key)
    assert not pending
    assert table.walk(3) == ([], [])
    with pytest.raises(ValueError, match="at least one key"):
        table.walk(0)
    if not during:
        assert order == start  # least recently used first


def test_many_keys_with_churn_stay_consistent() -> None:
    """Past the index's growth and its clean-ups: a table held at 5,000 keys while 60,000 come
    and go keeps every tracked key's slot and its order."""
    table = native()()
    reference = PyKeyTable()
    for n in range(60_000):
        key = f"i10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        for t in (table, reference):
            t.add(key, n)
            if n % 7 == 0:
                t.touch(f"i10.0.0.{n % 200}")
            if len(t) > 5_000:
                t.pop_oldest()
    assert len(table) == len(reference) == 5_000
    assert table.tracked() == reference.tracked()
    assert table.slots() == reference.slots()
    assert table.get("i10.0.0.7") == reference.get("i10.0.0.7")


def test_every_key_is_found_while_the_index_grows_a_few_cells_at_a_time() -> None:
    """The C index moves into a bigger one a few cells per addition: during the move a key is
    in one of the two, and lookups, touches, removals and evictions must find it there."""
    import random

    rng = random.Random(5)
    table = native()()
    reference = PyKeyTable()
    keys: list[str] = []
    for n in range(40_000):
        key = f"l{n}\u00e9" if n % 3 else f"i10.{n >> 8 & 255}.{n & 255}"
        keys.append(key)
        for t in (table, reference):
            t.add(key, n)
        probe = keys[rng.randrange(len(keys))]
        assert table.get(probe) == reference.get(probe)
        if n % 5 == 0:
            victim = keys[rng.randrange(len(keys))]
            assert table.pop(victim) == reference.pop(victim)
        if n % 7 == 0:
            touched = keys[rng.randrange(len(keys))]
            assert table.touch(touched) == reference.touch(touched)
        if n % 11 == 0 and len(reference):
            assert table.pop_oldest() == reference.pop_oldest()
    assert len(table) == len(reference)
    assert table.tracked() == reference.tracked()
    assert table.slots() == reference.slots()
    assert all(table.get(key) == reference.get(key) for key in keys)


def test_bad_arguments_are_refused() -> None:
    table = native()()
    for t in (table, PyKeyTable()):
        with pytest.raises(ValueError, match="a slot is not negative"):
            t.add("k", -1)
        t.add("k", 1)
        with pytest.raises(ValueError, match="already tracked"):
            t.add("k", 2)
    with pytest.raises(TypeError, match="a tracked key is a str"):
        table.get(b"k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no arguments"):
        type(table)(1)  # type: ignore[call-arg]


def test_memory_per_key_is_a_fraction_of_the_reference() -> None:
    """Bytes the table itself holds for 100,000 address keys (its __sizeof__, which counts the
    entries, the index and the keys' code units) against the reference's dict, strs and ints
    (not even counting the ordered dict's linked nodes, which getsizeof does not see)."""
    table = native()()
    reference = PyKeyTable()
    keys = [f"i10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(100_000)]
    for n, key in enumerate(keys):
        table.add(key, n + 1000)
        reference.add(key, n + 1000)
    mine = sys.getsizeof(table)
    theirs = sys.getsizeof(reference._slots) + sum(sys.getsizeof(k) for k in keys)
    theirs += sum(sys.getsizeof(n + 1000) for n in range(100_000))
    assert mine / 100_000 < 100, mine / 100_000
    assert mine < 0.6 * theirs, (mine, theirs)
