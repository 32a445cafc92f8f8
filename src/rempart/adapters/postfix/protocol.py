"""Postfix's SMTPD policy protocol on the wire.

A request is a block of `name=value` lines, each ending with a newline, closed by an empty line;
the answer is `action=<what to do>`, a newline and an empty line. Postfix keeps the connection
for further requests (smtpd_policy_service_reuse_count_limit, max_idle, max_ttl).

Reading is bounded: a line longer than `max_line` bytes or a request larger than `max_request`
bytes ends the connection (after a DEFER_IF_PERMIT: the stream cannot be resynchronised), a
line that is not `name=value` spoils only its own request, a request left unfinished for
`request_timeout` seconds, or a connection idle for `idle_timeout`, is closed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

# Postfix's attribute names: lower-case letters, digits and underscores.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_SAFE_TEXT = re.compile(r"[^\x20-\x7e]")


class BadRequest(Exception):
    """A request Rempart cannot judge. `close`: the stream is beyond resynchronising."""

    def __init__(self, reason: str, close: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close = close


class Timeout(Exception):
    """The client left a request unfinished, or the connection idle, for too long."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_line: int = 4096
    max_request: int = 65536
    request_timeout: float = 10.0
    idle_timeout: float = 600.0


def parse_attribute(line: bytes, number: int) -> tuple[str, str]:
    """(name, value) of one line without its newline; BadRequest naming the line otherwise.

    Values are UTF-8 (Postfix passes SMTPUTF8 addresses as they came); bytes that are not
    become U+FFFD rather than failing the request."""
    text = line.decode("utf-8", "replace")
    name, eq, value = text.partition("=")
    if not eq or not _NAME.fullmatch(name):
        shown = text[:40].encode("ascii", "backslashreplace").decode()
        raise BadRequest(f"line {number} is not name=value: {shown!r}")
    return name, value


async def read_request(reader: asyncio.StreamReader, limits: Limits) -> dict[str, str] | None:
    """The next request's attributes; None when the client closed the connection between
    requests (or in the middle of one: nothing can be answered then).

    Raises BadRequest (answer DEFER_IF_PERMIT; close the connection when `close`) or Timeout.
    The reader's own limit must be `limits.max_line + 1` (asyncio's `limit=`)."""
    try:
        return await _read(reader, limits)
    except TimeoutError:
        raise Timeout("request unfinished or connection idle for too long") from None


async def _read(reader: asyncio.StreamReader, limits: Limits) -> dict[str, str] | None:
    attributes: dict[str, str] = {}
    size = 0
    number = 0
    malformed: BadRequest | None = None
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(limits.idle_timeout) as deadline:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise BadRequest(
                    f"line {number + 1} is longer than {limits.max_line} bytes", close=True
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if number == 0:
                # A request has begun: the rest of it comes promptly or not at all.
                deadline.reschedule(loop.time() + limits.request_timeout)
            number += 1
            size += len(line)
            if len(line) > limits.max_line + 1:
                raise BadRequest(
                    f"line {number} is longer than {limits.max_line} bytes", close=True
                )
            if size > limits.max_request:
                raise BadRequest(f"request larger than {limits.max_request} bytes", close=True)
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if malformed is not None:
                    raise malformed
                return attributes
            try:
                name, value = parse_attribute(line, number)
            except BadRequest as exc:
                malformed = malformed or exc  # read on to the request's end, report the first
                continue
            attributes[name] = value
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def answer_line(action: str, text: str = "") -> bytes:
    """`action=ACTION text` and the empty line ending the answer. The text becomes part of an
    SMTP reply: printable ASCII only, one line, at most 400 characters."""
    text = _SAFE_TEXT.sub("?", text)[:400].strip()
    body = f"action={action} {text}" if text else f"action={action}"
    return body.encode("ascii") + b"\n\n"
