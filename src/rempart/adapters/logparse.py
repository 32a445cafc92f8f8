"""Log parsers: one log line in, one authentication outcome (or nothing) out.

Parsers are data (fail2ban-style): `adapters/logparsers/<name>.toml` holds ordered rules, each a
regular expression with named groups (`ip` required; `login`, `protocol`, `count` optional) and
the outcome it means (`success`, `failure`, `unknown_login`, `policy_reject`, or `ignore`), plus
sample lines with the outcome expected of each, which the tests replay. The first matching rule
decides. `regex_parser` builds a one-rule parser from the command line or the `[tail]` table.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote

from rempart.engine.keys import KeyError_, net_keys
from rempart.model import Outcome, Protocol

OUTCOMES = ("success", "failure", "unknown_login", "policy_reject", "ignore")
MAX_COUNT = 100  # "auth failed, N attempts": a bound, whatever the line says


class ParserError(ValueError):
    """A parser definition that cannot be used, with the parser and the rule named."""


class BadLine(ValueError):
    """A line that matched a rule but carries an unusable field."""

    def __init__(self, field_name: str, why: str) -> None:
        super().__init__(f"field {field_name!r}: {why}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One authentication outcome read from a log."""

    outcome: str
    ip: str
    login: str  # as logged, "" when the line has none
    protocol: Protocol
    count: int = 1

    def to_outcome(self) -> Outcome:
        return Outcome(
            success=self.outcome == "success",
            policy_reject=self.outcome == "policy_reject",
            unknown_login=self.outcome == "unknown_login",
        )


@dataclass(frozen=True, slots=True)
class Rule:
    regex: re.Pattern[str]
    outcome: str
    protocol: Protocol | None = None


@dataclass(slots=True)
class LogParser:
    name: str
    description: str
    protocol: Protocol
    rules: list[Rule]
    samples: list[dict[str, Any]] = field(default_factory=list)
    percent_encoded_login: bool = False

    def parse(self, line: str) -> LogEvent | None:
        """The event of a line; None when no rule (or an `ignore` rule) matches it.

        Raises BadLine when a rule matches but its address is not an IP address."""
        for rule in self.rules:
            match = rule.regex.search(line)
            if match is None:
                continue
            if rule.outcome == "ignore":
                return None
            groups = match.groupdict()
            raw_ip = groups.get("ip") or ""
            try:
                ip = net_keys(raw_ip).ip
            except KeyError_:
                raise BadLine("ip", f"not an IP address: {raw_ip[:64]!r}") from None
            login = (groups.get("login") or "").strip()
            if self.percent_encoded_login:
                login = unquote(login)
            if len(login) > 1024:
                raise BadLine("login", "longer than 1024 characters")
            protocol = rule.protocol or self.protocol
            if groups.get("protocol"):
                named = Protocol.parse(groups["protocol"])
                if named is not Protocol.OTHER:
                    protocol = named
            count = 1
            if groups.get("count"):
                count = max(1, min(MAX_COUNT, int(groups["count"])))
            return LogEvent(rule.outcome, ip, login, protocol, count)
        return None


def _protocol(value: Any, where: str) -> Protocol:
    if not isinstance(value, str):
        raise ParserError(f"{where}: protocol must be a string")
    parsed = Protocol.parse(value)
    if parsed is Protocol.OTHER and value.strip().lower() != "other":
        raise ParserError(f"{where}: unknown protocol {value!r}")
    return parsed


def compile_rule(regex: Any, outcome: Any, protocol: Any, where: str) -> Rule:
    if not isinstance(regex, str) or not regex:
        raise ParserError(f"{where}: 'regex' must be a non-empty string")
    if outcome not in OUTCOMES:
        raise ParserError(f"{where}: 'outcome' must be one of {', '.join(OUTCOMES)}")
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ParserError(f"{where}: invalid regex: {exc}") from None
    if outcome != "ignore" and "ip" not in compiled.groupindex:
        raise ParserError(f"{where}: the regex needs a named group (?P<ip>...)")
    return Rule(compiled, outcome, None if protocol is None else _protocol(protocol, where))


def parser_from_mapping(name: str, data: dict[str, Any]) -> LogParser:
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise ParserError(f"parser {name}: needs at least one [[rules]] table")
    rules = [
        compile_rule(r.get("regex"), r.get("outcome"), r.get("protocol"), f"parser {name} rule {i}")
        for i, r in enumerate(rules_data, 1)
    ]
    samples = data.get("samples", [])
    encoding = data.get("login_encoding", "plain")
    if encoding not in ("plain", "percent"):
        raise ParserError(f"parser {name}: login_encoding is 'plain' or 'percent'")
    return LogParser(
        name=name,
        description=str(data.get("description", "")),
        protocol=_protocol(data.get("protocol", "other"), f"parser {name}"),
        rules=rules,
        samples=samples if isinstance(samples, list) else [],
        percent_encoded_login=encoding == "percent",
    )


def available_parsers() -> list[str]:
    folder = resources.files("rempart.adapters.logparsers")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_parser(name: str) -> LogParser:
    """A shipped parser by name (dovecot, postfix, sshd, nginx)."""
    if name not in available_parsers():
        raise ParserError(
            f"unknown parser {name!r} (shipped: {', '.join(available_parsers())}; or give a regex)"
        )
    text = resources.files("rempart.adapters.logparsers").joinpath(f"{name}.toml").read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParserError(f"parser {name}: invalid TOML: {exc}") from None
    return parser_from_mapping(name, data)


def regex_parser(regex: str, outcome: str = "failure", protocol: str = "other") -> LogParser:
    """A one-rule parser: `regex` with (?P<ip>...) and optionally (?P<login>...)."""
    rule = compile_rule(regex, outcome, protocol, "regex parser")
    if rule.outcome == "ignore":
        raise ParserError("regex parser: an 'ignore' rule alone would report nothing")
    return LogParser("regex", "custom regular expression", _protocol(protocol, "regex"), [rule])
