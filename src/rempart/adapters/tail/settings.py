"""The `[tail]` table: which files to follow with which parser, how often, and where offsets go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rempart.adapters.logparse import LogParser, ParserError, load_parser
from rempart.adapters.logparse import regex_parser as make_regex_parser
from rempart.config import ConfigError


@dataclass(frozen=True)
class TailSettings:
    files: list[tuple[str, LogParser]]
    poll_seconds: float
    state_file: str
    start_at: str


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


def tail_settings(raw: dict[str, Any]) -> TailSettings:
    """Typed `[tail]` settings; ConfigError naming the entry and the key otherwise."""
    table = raw.get("tail", {})
    files = table.get("files", [])
    if not isinstance(files, list):
        raise ConfigError("[tail] files: expected an array of tables")
    parsed: list[tuple[str, LogParser]] = []
    for i, entry in enumerate(files, 1):
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
    poll = table.get("poll_seconds", 0.5)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0.05 <= poll <= 60:
        raise ConfigError(f"[tail] poll_seconds: a number from 0.05 to 60, got {poll!r}")
    state_file = table.get("state_file", "")
    if not isinstance(state_file, str):
        raise ConfigError("[tail] state_file: expected a string")
    start_at = table.get("start_at", "end")
    if start_at not in ("end", "start"):
        raise ConfigError(f'[tail] start_at: "end" or "start", got {start_at!r}')
    return TailSettings(parsed, float(poll), state_file, start_at)
