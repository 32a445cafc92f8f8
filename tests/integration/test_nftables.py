"""The nftables sync against the real kernel, inside network namespaces this test creates.

Two namespaces joined by a veth pair: `edge` holds a TCP listener and Rempart's table (the sync's
nft command is `ip netns exec <edge> nft`), `peer` holds two client addresses. A blocked
address's connection fails while the other's succeeds; expiry lets it in again; an allow entry
beats a block on its network; a flushed ruleset is restored. Needs root, `ip` and `nft`
(REMPART_REQUIRE_NFTABLES=1 fails instead of skipping, as in CI). The host's own ruleset is
never touched: both namespaces are deleted afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need
from tests.integration.rig import PASSWORD, RempartProcess

EDGE_IP, BLOCKED_IP, OTHER_IP = "198.18.0.1", "198.18.0.2", "198.18.0.3"
PORT = 7070

LISTENER = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{EDGE_IP}", {PORT}))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""

CONNECT = f"""
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[2]))
s.bind((sys.argv[1], 0))
try:
    s.connect(("{EDGE_IP}", {PORT}))
except OSError:
    sys.exit(1)
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@dataclass
class Namespaces:
    edge: str
    peer: str

    def nft(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.edge, "nft", *args)

    def connects(self, source: str, timeout: float = 0.5) -> bool:
        """Whether a TCP connection from `source` (in peer) to the listener in edge succeeds."""
        done = _run(
            "ip", "netns", "exec", self.peer, sys.executable, "-c", CONNECT, source, str(timeout)
        )
        return done.returncode == 0

    @property
    def nft_command(self) -> str:
        return f'["ip", "netns", "exec", "{self.edge}", "nft"]'


def _prerequisites() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root (network namespaces and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (Debian: iproute2, nftables)"
    return True, ""


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    ok, why = _prerequisites()
    need("nftables", ok, why)
    tag = f"rpt{os.getpid() % 100000}"
    ns = Namespaces(f"{tag}e", f"{tag}p")
    made: list[str] = []
    listener: subprocess.Popen[str] | None = None
    try:
        for name in (ns.edge, ns.peer):
            done = _run("ip", "netns", "add", name)
            need("nftables", done.returncode == 0, f"cannot create a namespace: {done.stderr}")
            made.append(name)
        steps = [
            [
                "ip",
                "link",
                "add",
                f"{tag}a",
                "netns",
                ns.edge,
                "type",
                "veth",
                "peer",
                "name",
                f"{tag}b",
                "netns",
                ns.peer,
            ],
            ["ip", "-n", ns.edge, "addr", "add", f"{EDGE_IP}/24", "dev", f"{tag}a"],
            ["ip", "-n", ns.peer, "addr", "add", f"{BLOCKED_IP}/24", "dev", f"{tag}b"],
            ["ip", "-n", ns.peer, "addr", "add", f"{OTHER_IP}/24", "dev", f"{tag}b"],
        ]
        steps += [
            ["ip", "-n", n, "link", "set", d, "up"]
            for n, d in (
                (ns.edge, "lo"),
                (ns.peer, "lo"),
                (ns.edge, f"{tag}a"),
                (ns.peer, f"{tag}b"),
            )
        ]
        for step in steps:
            done = _run(*step)
            assert done.returncode == 0, f"{' '.join(step)}: {done.stderr}"
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns.edge, sys.executable, "-c", LISTENER],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        assert ns.connects(BLOCKED_IP, 5) and ns.connects(OTHER_IP, 5)
        yield ns
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        for name in made:
            _run("ip", "netns", "delete", name)


def eventually(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {within} s: {what}")


def metric(server: RempartProcess, name: str) -> float:
    status, text = server.request("GET", "/metrics", password=None)
    assert status == 200
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, name
    return float(found.group(1))


def config(ns: Namespaces, enabled: bool) -> str:
    return (
        f"[nftables]\nenabled = {'true' if enabled else 'false'}\ncommand = {ns.nft_command}\n"
        "check_s = 0.5\nbatch_ms = 50\npoll_s = 0.3\nretry_s = 0.5\n"
    )


def test_rempart_serve_keeps_the_kernel_dropping_blocked_sources(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    ns = namespaces
    server = RempartProcess(tmp_path / "data", config(ns, True)).start()
    try:
        eventually(
            lambda: ns.nft("list", "chain", "inet", "rempart", "filter").returncode == 0,
            10,
            "the table is generated at start",
        )
        assert ns.connects(BLOCKED_IP) and ns.connects(OTHER_IP)

        # a blocked address is dropped by the kernel; another still connects
        status, _ = server.command(
            "addBLEntry", {"ip": BLOCKED_IP, "expire_secs": 4, "reason": "t"}
        )
        assert status == 200
        eventually(lambda: not ns.connects(BLOCKED_IP), 5, "the blocked address is dropped")
        assert ns.connects(OTHER_IP)
        assert "timeout" in ns.nft("list", "set", "inet", "rempart", "block4_addrs").stdout

        # expiry lets it in again
        eventually(lambda: ns.connects(BLOCKED_IP), 10, "the expired block is lifted")

        # a login entry is not network-level: nothing in the sets
        server.command("addBLEntry", {"login": "bob@example.org", "expire_secs": 60, "reason": "t"})

        # an allow entry beats a block of its whole network
        status, _ = server.command(
            "addBLEntry", {"netmask": "198.18.0.0/24", "expire_secs": 3600, "reason": "t"}
        )
        assert status == 200
        status, _ = server.command(
            "addWLEntry", {"ip": OTHER_IP, "expire_secs": 3600, "reason": "t"}
        )
        assert status == 200
        eventually(lambda: not ns.connects(BLOCKED_IP), 5, "the blocked network is dropped")
        assert ns.connects(OTHER_IP), "the allow entry wins"

        # a flushed ruleset is regenerated from the lists
        resyncs = metric(server, "rempart_nft_resyncs_total")
        assert ns.nft("flush", "ruleset").returncode == 0
        eventually(lambda: metric(server, "rempart_nft_resyncs_total") > resyncs, 10, "a resync")
        assert not ns.connects(BLOCKED_IP) and ns.connects(OTHER_IP)
        sets = ns.nft("list", "table", "inet", "rempart").stdout
        assert "198.18.0.0/24" in sets and OTHER_IP in sets and "bob" not in sets

        # nested networks: the kernel holds the widest; when it expires the narrower one,
        # still listed, takes over (interval sets refuse overlapping elements)
        status, _ = server.command(
            "addBLEntry", {"netmask": "198.18.0.0/25", "expire_secs": 3600, "reason": "t"}
        )
        assert status == 200
        status, _ = server.command("delBLEntry", {"netmask": "198.18.0.0/24"})
        assert status == 200
        status, _ = server.command(
            "addBLEntry", {"netmask": "198.18.0.0/16", "expire_secs": 3, "reason": "t"}
        )
        assert status == 200
        nets = lambda: ns.nft("list", "set", "inet", "rempart", "block4_nets").stdout  # noqa: E731
        eventually(lambda: "198.18.0.0/16" in nets(), 5, "the wider network is installed")
        assert "198.18.0.0/25" not in nets()
        eventually(lambda: "198.18.0.0/25" in nets(), 8, "the narrower one after the expiry")
        assert "198.18.0.0/16" not in nets()
        assert not ns.connects(BLOCKED_IP) and ns.connects(OTHER_IP)

        # removing the network block opens it again
        status, _ = server.command("delBLEntry", {"netmask": "198.18.0.0/25"})
        assert status == 200
        eventually(lambda: ns.connects(BLOCKED_IP), 5, "the removed block is lifted")
        assert metric(server, "rempart_nft_elements_synced_total") >= 4
        assert metric(server, "rempart_nft_failures_total") == 0
        assert metric(server, "rempart_nft_last_sync_timestamp_seconds") > time.time() - 60
    finally:
        server.stop()


def test_rempart_nft_as_a_separate_process(namespaces: Namespaces, tmp_path: Path) -> None:
    ns = namespaces
    server = RempartProcess(tmp_path / "data", config(ns, False)).start()
    env = {**os.environ, "REMPART_API_PASSWORD": PASSWORD}
    sync = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rempart",
            "nft",
            "--config",
            str(server.config_path),
            "--url",
            f"http://127.0.0.1:{server.port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        eventually(
            lambda: ns.nft("list", "chain", "inet", "rempart", "filter").returncode == 0,
            15,
            "the separate process generates the table",
        )
        server.command("addBLEntry", {"ip": BLOCKED_IP, "expire_secs": 600, "reason": "t"})
        eventually(lambda: not ns.connects(BLOCKED_IP), 5, "the blocked address is dropped")
        assert ns.connects(OTHER_IP)
        server.command("delBLEntry", {"ip": BLOCKED_IP})
        eventually(lambda: ns.connects(BLOCKED_IP), 5, "the removed block is lifted")
        assert sync.poll() is None
    finally:
        sync.terminate()
        out, _ = sync.communicate(timeout=40)
        server.stop()
    assert sync.returncode == 0, out


def test_a_batch_nft_refuses_is_healed_without_losing_changes(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    ns = namespaces
    server = RempartProcess(tmp_path / "data", config(ns, True)).start()
    try:
        eventually(
            lambda: ns.nft("list", "chain", "inet", "rempart", "filter").returncode == 0,
            10,
            "the table is generated at start",
        )
        server.command("addBLEntry", {"ip": BLOCKED_IP, "expire_secs": 3600, "reason": "t"})
        eventually(lambda: not ns.connects(BLOCKED_IP), 5, "the blocked address is dropped")
        # someone removes the element behind Rempart's back: its delete will be refused
        element = ["element", "inet", "rempart", "block4_addrs", "{", BLOCKED_IP, "}"]
        assert ns.nft("delete", *element).returncode == 0
        failures = metric(server, "rempart_nft_failures_total")
        server.command("delBLEntry", {"ip": BLOCKED_IP})
        server.command("addBLEntry", {"ip": OTHER_IP, "expire_secs": 3600, "reason": "t"})
        eventually(
            lambda: metric(server, "rempart_nft_failures_total") > failures,
            5,
            "nft refuses the batch deleting an element it does not hold",
        )
        # no change is lost (the other block may share the refused batch): the resync heals
        eventually(lambda: not ns.connects(OTHER_IP), 10, "the other block after the resync")
        assert ns.connects(BLOCKED_IP)
        assert OTHER_IP in ns.nft("list", "set", "inet", "rempart", "block4_addrs").stdout
    finally:
        server.stop()
