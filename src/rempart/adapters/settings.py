"""The adapters' sections of the configuration: `[nginx]` (the auth_request endpoint) and
`[tail]` (log files `rempart serve` follows), registered with `rempart.config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rempart.adapters.logparse import LogParser, ParserError, load_parser
from rempart.adapters.logparse import regex_parser as make_regex_parser
from rempart.adapters.sources import TrustedProxies
from rempart.config import ConfigError, knob, section
from rempart.model import Protocol


def _proxies(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise TypeError("expected a list of addresses/networks")
    TrustedProxies(raw)  # raises ValueError naming the bad entry
    return tuple(raw)


def _header(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"expected a string, got {raw!r}")
    return raw.strip()


def _required_header(raw: Any) -> str:
    header = _header(raw)
    if not header:
        raise ValueError("must not be empty")
    return header


def _protocol(raw: Any) -> Protocol:
    name = _header(raw)
    protocol = Protocol.parse(name)
    if protocol is Protocol.OTHER and name.lower() != "other":
        raise ValueError(f"unknown protocol {name!r}")
    return protocol


@section(
    "nginx", doc="The nginx auth_request endpoint GET /v1/nginx/auth (see `rempart nginx-config`)."
)
@dataclass(frozen=True, slots=True)
class NginxSettings:
    trusted_proxies: tuple[str, ...] = knob(
        ("127.0.0.1", "::1"),
        "Peers whose client-address header is believed: the nginx in front of Rempart. From any "
        "other peer the socket's address is the client's.",
        parse=_proxies,
    )
    client_ip_header: str = knob(
        "X-Real-IP",
        'The header carrying the client\'s address ("X-Forwarded-For": its rightmost untrusted '
        "hop).",
        parse=_required_header,
    )
    login_header: str = knob(
        "X-Rempart-Login",
        "Where the login comes from when the original request has no HTTP Basic credentials "
        '(nginx passes those as X-Original-Authorization); "" judges such requests per source '
        "address.",
        parse=_header,
    )
    device_header: str = knob(
        "X-Device-Id",
        'Header with a device or client id ("" for none); the User-Agent is always read.',
        parse=_header,
    )
    protocol_header: str = knob(
        "X-Rempart-Protocol",
        "Header naming the protocol (web, app, api...), else `protocol`.",
        parse=_header,
    )
    protocol: Protocol = knob(Protocol.WEB, "", parse=_protocol)
    step_up: str = knob(
        "refuse",
        'step_up: "refuse" answers 401 (the client app starts its second factor); "forward" lets '
        "the request pass with X-Rempart-Verdict: step_up for the upstream app to enforce.",
        parse=_header,
        choices=("refuse", "forward"),
    )


def parser_for(spec: dict[str, Any], where: str) -> LogParser:
    """The parser of a `[tail] files` entry or of the command line's options."""
    try:
        if spec.get("regex"):
            return make_regex_parser(
                str(spec["regex"]),
                str(spec.get("outcome", "failure")),
                str(spec.get("protocol", "other")),
            )
        if not spec.get("parser"):
            raise ParserError("needs 'parser' (dovecot, postfix, sshd, nginx) or 'regex'")
        return load_parser(str(spec["parser"]))
    except ParserError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _tail_files(raw: Any) -> tuple[tuple[str, LogParser], ...]:
    if not isinstance(raw, list):
        raise TypeError("expected an array of tables")
    parsed: list[tuple[str, LogParser]] = []
    for i, entry in enumerate(raw, 1):
        where = f"[tail] files entry {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table {{ path = ..., parser = ... }}")
        unknown = set(entry) - {"path", "parser", "regex", "outcome", "protocol"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: 'path' must be a non-empty string")
        parsed.append((path, parser_for(entry, f"{where} ({path})")))
    return tuple(parsed)


@section(
    "tail",
    doc="Log files `rempart serve` follows where no hook exists, each with its parser (dovecot, "
    "postfix, sshd, nginx; or regex = '...' with named groups ip and login, plus outcome): "
    'files = [{ path = "/var/log/mail.log", parser = "postfix" }, { path = "/var/log/auth.log", '
    "regex = 'Failed password for (?P<login>\\\\S+) from (?P<ip>\\\\S+)', outcome = \"failure\", "
    'protocol = "other" }]',
)
@dataclass(frozen=True, slots=True)
class TailSettings:
    files: tuple[tuple[str, LogParser], ...] = knob(
        (), "", parse=_tail_files, show=lambda files: [{"path": p} for p, _ in files]
    )
    poll_seconds: float = knob(
        0.5,
        "How often the files are checked for new lines, rotation and truncation (seconds).",
        ge=0.05,
        le=60,
    )
    state_file: str = knob(
        "", 'Where read offsets survive restarts ("" = <data_dir>/tail-offsets.json).'
    )
    start_at: str = knob(
        "end",
        'A file seen for the first time is read from its end ("end") or from its start ("start").',
        choices=("end", "start"),
    )
