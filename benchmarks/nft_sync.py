"""nftables sync update rate: changes per second through the batcher into a real kernel's sets,
in a network namespace this script creates and deletes (needs root, `ip`, `nft`).

Measures: a full resync of N addresses; a burst of N new blocks applied from the moment they are
listed; a sustained stream of R changes/s (new blocks and removals of earlier ones) for D s
with the most changes waiting and the event loop's worst stall; and, for comparison, one nft
process per change.

    sudo PYTHONPATH=src python benchmarks/nft_sync.py --count 100000 --rate 5000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time

from rempart.engine.lists import ListEntry
from rempart.firewall.settings import NftSettings
from rempart.firewall.sync import NftSync
from rempart.model import ListName


def address(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def block(i: int, now: float) -> ListEntry:
    return ListEntry("ip", address(i), now + 3600, "benchmark", now)


async def applied(sync: NftSync, synced: int, limit: float = 120.0) -> float:
    """Seconds until nft accepted `synced` element changes in all (each change here is one
    element added or deleted)."""
    started = time.perf_counter()
    while sync.elements_synced < synced and time.perf_counter() - started < limit:
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def watch_loop(stop: asyncio.Event, worst: list[float]) -> None:
    """The event loop's worst lateness on a 5 ms timer."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.005)
        worst[0] = max(worst[0], time.perf_counter() - before - 0.005)


async def measure(namespace: str, count: int, rate: int, seconds: float) -> None:
    command = ("ip", "netns", "exec", namespace, "nft")
    settings = NftSettings(command=command, resync_s=0, check_s=3600)
    now = time.time()
    preset = [(ListName.BLOCK, block(i, now)) for i in range(count)]

    gc.collect()
    gc.freeze()  # as `rempart serve` does, with its thresholds (set in main)
    stop = asyncio.Event()
    worst = [0.0]
    watcher = asyncio.ensure_future(watch_loop(stop, worst))

    # full resync of `count` addresses
    sync = NftSync(settings, lambda: preset)
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    assert await sync.resync()
    print(
        f"full resync, {count} addresses: {time.perf_counter() - started:.2f} s, "
        f"event loop worst stall {worst[0] * 1000:.1f} ms"
    )
    sync = NftSync(settings, lambda: [])
    running = asyncio.ensure_future(sync.run(stop))
    while sync.need_resync:
        await asyncio.sleep(0.01)

    # burst: `count` new blocks at once
    now = time.time()
    batches, synced = sync.batches, sync.elements_synced
    started = time.perf_counter()
    for i in range(count):
        sync.put(ListName.BLOCK, block(count + i, now))
    listed = time.perf_counter() - started
    took = listed + await applied(sync, synced + count)
    print(
        f"burst of {count} blocks: applied in {took:.2f} s = {count / took:,.0f} changes/s, "
        f"{sync.batches - batches} nft batches (listing them took {listed:.2f} s)"
    )

    # sustained: `rate` changes/s for `seconds` (half new blocks, half removals)
    worst[0] = 0.0
    most_pending = 0
    batches = sync.batches
    synced = sync.elements_synced
    started = time.perf_counter()
    sent = 0
    tick = 0.01
    while time.perf_counter() - started < seconds:
        due = int((time.perf_counter() - started) * rate)
        now = time.time()
        while sent < due:
            i = 2 * count + sent // 2
            if sent % 2 == 0:
                sync.put(ListName.BLOCK, block(i, now))
            else:
                sync.remove(ListName.BLOCK, block(count + sent // 2, now))
            sent += 1
        most_pending = max(most_pending, sync.pending)
        await asyncio.sleep(tick)
    lag = await applied(sync, synced + sent)
    elapsed = time.perf_counter() - started
    print(
        f"sustained {rate} changes/s for {seconds:g} s: {sent} changes, "
        f"{sync.elements_synced - synced} applied in {sync.batches - batches} batches, "
        f"at most {most_pending} waiting, drained {lag * 1000:.0f} ms after the last, "
        f"{sent / elapsed:,.0f} changes/s overall; event loop worst stall "
        f"{worst[0] * 1000:.1f} ms; failures {sync.failures}"
    )
    stop.set()
    await running
    await watcher

    # one nft process per change, for comparison
    singles = 200
    started = time.perf_counter()
    for i in range(singles):
        element = address(3 * count + i)
        subprocess.run(
            [*command, "add", "element", "inet", "rempart", "block4_addrs", "{", element, "}"],
            check=True,
        )
    per = (time.perf_counter() - started) / singles
    print(f"one nft process per change: {per * 1000:.1f} ms each = {1 / per:,.0f} changes/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace and nftables)")
    gc.set_threshold(50_000, 20, 100)
    namespace = f"rempart-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        asyncio.run(measure(namespace, args.count, args.rate, args.seconds))
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=True)


if __name__ == "__main__":
    main()
