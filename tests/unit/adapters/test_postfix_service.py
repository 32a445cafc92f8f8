"""The Postfix policy service on real sockets: several requests per connection, refusals in the
journal and the metrics, bad input answered or disconnected without taking the service down."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from rempart.adapters.postfix.decide import Decider
from rempart.adapters.postfix.metrics import PostfixCollector
from rempart.adapters.postfix.service import ListenError, PolicyService
from rempart.adapters.postfix.settings import PostfixSettings
from rempart.config import LoginRules
from rempart.engine.engine import Engine
from rempart.engine.lists import ListEntry
from rempart.model import ListName
from rempart.ops.journal import Journal
from rempart.process import free_port

SETTINGS = replace(
    PostfixSettings(),
    enabled=True,
    recipients_per_hour=2,
    request_timeout=0.3,
    idle_timeout=1.0,
    max_line_bytes=512,
    max_request_bytes=4096,
    max_connections=4,
)


def rcpt(login: str = "alice@example.org", recipient: str = "bob@example.net") -> bytes:
    return (
        b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.7\n"
        b"sasl_username=%s\nrecipient=%s\nqueue_id=4XYZ\n\n" % (login.encode(), recipient.encode())
    )


Scenario = Callable[[PolicyService], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, settings: PostfixSettings | None = None) -> Journal:
    """Run `scenario` against a started service journaling into tmp_path; the journal, closed."""
    settings = settings or replace(SETTINGS, port=0, unix_socket=str(tmp_path / "policy.sock"))
    journal = Journal(tmp_path / "journal", flush_interval=0.05)
    journal.start()
    engine = Engine.in_memory()
    engine.add_entry(ListName.BLOCK, ListEntry("login", "mallory@example.org", 0.0, "ops", 1.0))
    service = PolicyService(Decider(engine, LoginRules(), settings), settings, journal.append)

    async def main() -> None:
        await service.start()
        try:
            await scenario(service)
        finally:
            await service.stop()

    try:
        asyncio.run(main())
    finally:
        journal.close()
    return journal


async def connect(service: PolicyService) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = service.settings.unix_socket
    if path:
        return await asyncio.open_unix_connection(path)
    return await asyncio.open_connection("127.0.0.1", service.settings.port)


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)


def test_many_requests_on_one_connection_refusals_journaled_and_counted(tmp_path: Path) -> None:
    answers: list[bytes] = []
    scraped: list[str] = []

    async def scenario(service: PolicyService) -> None:
        reader, writer = await connect(service)
        for data in (rcpt(), rcpt(), rcpt(), rcpt("mallory@example.org"), rcpt("")):
            answers.append(await ask(reader, writer, data))
        # Two requests in one write (Postfix never pipelines, but the stream must not care).
        writer.write(rcpt("bob@example.org") + rcpt("bob@example.org"))
        answers.append(await asyncio.wait_for(reader.readuntil(b"\n\n"), 5))
        answers.append(await asyncio.wait_for(reader.readuntil(b"\n\n"), 5))
        writer.close()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PostfixCollector(service))
        scraped.append(generate_latest(registry).decode())

    journal = run(tmp_path, scenario)
    assert answers == [
        b"action=DUNNO\n\n",
        b"action=DUNNO\n\n",
        b"action=DEFER 4.7.1 " + SETTINGS.rate_message.encode() + b"\n\n",
        b"action=REJECT 5.7.1 " + SETTINGS.blocked_message.encode() + b"\n\n",
        b"action=DUNNO\n\n",
        b"action=DUNNO\n\n",
        b"action=DUNNO\n\n",
    ]
    records = list(journal.records(kinds=frozenset({"postfix_refusal"})))
    assert [(r["login"], r["action"], r["code"], r["state"], r["ip"]) for r in records] == [
        ("alice@example.org", "DEFER", "recipient_rate", "RCPT", "192.0.2.7"),
        ("mallory@example.org", "REJECT", "blocklisted", "RCPT", "192.0.2.7"),
    ]
    assert journal.verify()[1] is None  # chained like every other record
    metrics = scraped[0]
    assert 'rempart_postfix_refusals_total{code="recipient_rate"} 1.0' in metrics
    assert 'rempart_postfix_refusals_total{code="blocklisted"} 1.0' in metrics
    assert 'rempart_postfix_answers_total{action="DUNNO"} 5.0' in metrics
    assert "rempart_postfix_rate_accounts 2.0" in metrics


def test_bad_input_is_answered_or_disconnected_and_the_service_keeps_serving(
    tmp_path: Path,
) -> None:
    seen: dict[str, object] = {}

    async def scenario(service: PolicyService) -> None:
        reader, writer = await connect(service)
        # A broken line: that request is deferred, the connection goes on.
        seen["broken"] = await ask(reader, writer, b"request=smtpd_access_policy\ngarbage\n\n")
        seen["missing"] = await ask(
            reader, writer, b"request=smtpd_access_policy\nsasl_username=alice@example.org\n\n"
        )
        seen["after"] = await ask(reader, writer, rcpt("carol@example.org"))
        # A huge line: deferred, then the connection is closed.
        seen["huge"] = await ask(reader, writer, b"recipient=" + b"x" * 5000 + b"\n\n")
        seen["closed"] = await asyncio.wait_for(reader.read(), 5)
        # A client that never finishes its request is disconnected after request_timeout.
        reader, writer = await connect(service)
        writer.write(b"request=smtpd_access_policy\nsender=")
        started = time.monotonic()
        seen["stalled"] = await asyncio.wait_for(reader.read(), 5)
        seen["stalled_for"] = time.monotonic() - started
        # A client that connects and says nothing is disconnected after idle_timeout.
        reader, writer = await connect(service)
        started = time.monotonic()
        seen["idle"] = await asyncio.wait_for(reader.read(), 5)
        seen["idle_for"] = time.monotonic() - started
        # Connections beyond max_connections are closed at once; the others still work.
        held = [await connect(service) for _ in range(4)]
        await asyncio.sleep(0.05)
        extra_reader, _ = await connect(service)
        seen["extra"] = await asyncio.wait_for(extra_reader.read(), 5)
        seen["held"] = await ask(*held[0], rcpt("dave@example.org"))
        seen["counters"] = dict(service.counters.problems)
        seen["refused"] = service.counters.refused_connections

    run(tmp_path, scenario)
    assert (
        seen["broken"]
        == b"action=DEFER_IF_PERMIT Rempart policy: line 2 is not name=value: 'garbage'\n\n"
    )
    assert seen["missing"] == (
        b"action=DEFER_IF_PERMIT Rempart policy: missing attribute client_address\n\n"
    )
    assert seen["after"] == b"action=DUNNO\n\n"
    assert seen["huge"] == (
        b"action=DEFER_IF_PERMIT Rempart policy: line 1 is longer than 512 bytes\n\n"
    )
    assert seen["closed"] == b""
    assert seen["stalled"] == b"" and 0.2 < seen["stalled_for"] < 0.9
    assert seen["idle"] == b"" and seen["idle_for"] >= 0.9
    assert seen["extra"] == b"" and seen["refused"] == 1
    assert seen["held"] == b"action=DUNNO\n\n"
    assert seen["counters"] == {"bad_request": 1, "too_large": 1, "timeout": 2, "malformed": 1}


def test_tcp_listener_and_socket_mode(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "policy.sock"
    settings = replace(SETTINGS, port=port, unix_socket=str(path), unix_socket_mode="0666")
    answers: list[bytes] = []

    async def scenario(service: PolicyService) -> None:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers.append(await ask(reader, writer, rcpt("mallory@example.org")))
        reader, writer = await asyncio.open_unix_connection(str(path))
        answers.append(await ask(reader, writer, rcpt()))

    run(tmp_path, scenario, settings)
    assert answers[0].startswith(b"action=REJECT 5.7.1 ") and answers[1] == b"action=DUNNO\n\n"
    assert not path.exists()  # removed at stop


def test_listen_errors_name_the_listener(tmp_path: Path) -> None:
    not_a_socket = tmp_path / "file"
    not_a_socket.write_text("keep me")

    async def nothing(service: PolicyService) -> None:
        raise AssertionError("started")

    settings = replace(SETTINGS, port=0, unix_socket=str(not_a_socket))
    with pytest.raises(ListenError, match="exists and is not a socket"):
        run(tmp_path, nothing, settings)
    assert not_a_socket.read_text() == "keep me"

    async def occupy() -> None:
        port = free_port()
        holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
        try:
            service = PolicyService(
                Decider(Engine.in_memory(), LoginRules(), SETTINGS),
                replace(SETTINGS, port=port),
            )
            with pytest.raises(ListenError, match=f"127.0.0.1:{port}: already in use"):
                await service.start()
        finally:
            holder.close()

    asyncio.run(occupy())


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "policy.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a crashed process's socket
    answers: list[bytes] = []

    async def scenario(service: PolicyService) -> None:
        answers.append(await ask(*await connect(service), rcpt()))

    run(tmp_path, scenario)
    assert answers == [b"action=DUNNO\n\n"]
