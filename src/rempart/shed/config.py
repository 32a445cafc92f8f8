"""The ``[shed]`` TOML table parsed into typed, validated settings with documented defaults.

Example (every key is optional except ``services`` when the HAProxy data plane is used)::

    [shed]
    default_class = "sheddable_plus"   # class of requests no route matches
    retry_after = 5                    # seconds, sent with every shed 503/429
    interval = 0.25                    # control-loop period, seconds

    [shed.limiter]                     # concurrency limit and admitted rate per upstream
    initial = 20                       # starting concurrency limit per upstream
    min = 2                            # never below
    max = 1000                         # never above
    epoch = 1.0                        # seconds of queued traffic per throughput measurement
    queue_delay = 0.1                  # HAProxy queue admission keeps, seconds of upstream work
    error_ratio = 0.05                 # upstream 5xx/error share that halves the limit
    utilization = 1.0                  # share of the measured capacity admission hands out
    tolerance = 1.5                    # ASGI middleware: RTT growth over no-load before shrinking
    smoothing = 0.2                    # ASGI middleware: weight of a new limit estimate (0..1]
    # The ASGI middleware re-measures its no-load RTT (HAProxy's control loop does not pin):
    minrtt_interval = 10.0             # re-measure the no-load RTT this often, seconds (0: never)
    minrtt_jitter = 0.15               # ± share of the interval, randomised
    minrtt_duration = 0.3              # seconds the concurrency stays pinned while measuring
    minrtt_concurrency = 3             # concurrency while measuring (critical demand is kept)

    [shed.episodes]                    # shedding episodes in the log and the journal
    end_after = 5.0                    # seconds fully admitted before an episode ends
    summary_interval = 60.0            # seconds between summary lines while it lasts
    limit_change = 0.25                # relative limit move worth a log line

    [shed.client_rate]                 # per source address and class, requests per 10 s (0: none)
    critical_plus = 0
    critical = 0
    sheddable_plus = 0
    sheddable = 0

    [shed.haproxy]
    bind = "127.0.0.1:8080"            # host:port; "${VAR}" forms are left to HAProxy
    runtime_socket = "/run/rempart/haproxy.sock"
    map_dir = ""                       # "" = <data_dir>/shed; HAProxy must be able to read it
    queue_timeout = 1.0                # seconds a request may wait for an upstream slot
    client_timeout = 30.0
    server_timeout = 30.0
    connect_timeout = 5.0
    maxconn = 0                        # 0 = fit the hard descriptor limit, at most 4096
    global_lines = []                  # extra lines for HAProxy's global section

    [[shed.services]]
    name = "web"
    upstream = "127.0.0.1:8081"        # host:port, or with "${VAR}" as HAProxy expands them
    probe_path = "/healthz"            # the controller's own latency probe ("" disables it)

    [[shed.routes]]
    name = "payments"
    class = "critical_plus"
    path = "/payments/*"
    host = "*"                         # default: any host
    methods = ["POST"]                 # default: any method
    service = "web"                    # default: the first service

Errors raise :class:`rempart.config.ConfigError` naming the offending key
(``shed.routes[2].path``). The table is registered with `rempart.config` as section ``shed``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rempart.config import ConfigError, from_table, knob, section
from rempart.shed.classes import CLASSES, Criticality
from rempart.shed.episodes import EpisodeSettings
from rempart.shed.patterns import HostPattern, PathPattern, RoutePattern, parse_methods

_REFERENCE = (
    "# [shed] configures admission control (criticality classes, HAProxy data plane); every key\n"
    "# with its default (`rempart config show --reference-shed`):\n"
    + "\n".join(
        "# " + line[4:] if line.strip() else "#"
        for line in (__doc__ or "")
        .split("::", 1)[1]
        .split("Errors raise", 1)[0]
        .strip("\n")
        .splitlines()
    )
    + "\n"
)


def _error(key: str, message: str) -> ConfigError:
    """The one configuration error, at the dotted `key` of the [shed] table."""
    return ConfigError(message, key)


@dataclass(frozen=True, slots=True)
class Route:
    """Requests matching ``pattern`` have class ``criticality`` and go to ``service``."""

    name: str
    criticality: Criticality
    pattern: RoutePattern
    service: str


@dataclass(frozen=True, slots=True)
class Service:
    """An upstream protected by one adaptive concurrency limit."""

    name: str
    address: str  # host:port, possibly with HAProxy "${VAR}" placeholders
    probe_path: str = "/healthz"

    def endpoint(self, environ: Mapping[str, str] = os.environ) -> tuple[str, int] | None:
        """(host, port) to probe, placeholders expanded from ``environ`` (None: unset)."""
        address = expand(self.address, environ)
        if address is None:
            return None
        try:
            return parse_address(address, "upstream")
        except ConfigError:
            return None


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """Concurrency limit and admitted rate per upstream.

    Behind HAProxy the limit is found on the upstream's throughput plateau
    (:mod:`rempart.shed.plateau`) and the admitted rate follows what the upstream serves
    (:mod:`rempart.shed.admit_rate`); the ASGI middleware uses the gradient of RTT (Netflix
    concurrency-limits ``Gradient2``, Envoy adaptive: ``tolerance``, ``smoothing``, ``minrtt_*``).
    """

    initial: float = knob(20.0, "starting concurrency limit per upstream", ge=1, le=1e6)
    min_limit: float = knob(2.0, "never below", key="min", ge=1, le=1e6)
    max_limit: float = knob(1000.0, "never above", key="max", ge=1, le=1e6)
    epoch: float = knob(
        1.0, "seconds of queued traffic per throughput measurement", ge=0.05, le=60.0
    )
    queue_delay: float = knob(
        0.1, "HAProxy queue admission keeps, seconds of upstream work", ge=0.0, le=10.0
    )
    tolerance: float = knob(
        1.5, "ASGI middleware: RTT growth over no-load before shrinking", ge=1.0, le=10.0
    )
    smoothing: float = knob(
        0.2, "ASGI middleware: weight of a new limit estimate (0..1]", ge=0.01, le=1.0
    )
    error_ratio: float = knob(
        0.05, "upstream 5xx/error share that halves the limit", ge=0.0, le=1.0
    )
    utilization: float = knob(
        1.0, "share of the measured capacity admission hands out", ge=0.05, le=1.0
    )
    minrtt_interval: float = knob(
        10.0, "re-measure the no-load RTT this often, seconds (0: never)", ge=0.0, le=86400.0
    )
    minrtt_jitter: float = knob(0.15, "± share of the interval, randomised", ge=0.0, le=0.5)
    minrtt_duration: float = knob(
        0.3, "seconds the concurrency stays pinned while measuring", ge=0.01, le=60.0
    )
    minrtt_concurrency: float = knob(
        3.0, "concurrency while measuring (critical demand is kept)", ge=1, le=1e6
    )

    def check(self) -> None:
        if self.min_limit > self.max_limit:
            raise ConfigError(
                f"must not exceed shed.limiter.max ({self.max_limit:g})", "shed.limiter.min"
            )
        if not self.min_limit <= self.initial <= self.max_limit:
            raise ConfigError(
                f"must be between {self.min_limit:g} and {self.max_limit:g}, got {self.initial:g}",
                "shed.limiter.initial",
            )


def _bind(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"must be a string, got {raw!r}")
    check_address(raw, "shed.haproxy.bind")
    return raw


# Lines the generator writes itself: set them through their own keys.
_OWNED_GLOBAL = ("maxconn", "stats socket")


def _global_lines(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(line, str) for line in raw):
        raise TypeError(f"must be a list of strings, got {raw!r}")
    lines: list[str] = []
    for index, line in enumerate(raw):
        text = " ".join(line.split())
        if not text or any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise ValueError(f"line {index + 1} must be one non-empty line, got {line!r}")
        for owned in _OWNED_GLOBAL:
            if text == owned or text.startswith(owned + " "):
                key = "maxconn" if owned == "maxconn" else "runtime_socket"
                raise ValueError(
                    f"line {index + 1} ({text!r}) is generated: set shed.haproxy.{key} instead"
                )
        lines.append(text)
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class HAProxySettings:
    """How the generated HAProxy configuration listens and where its runtime state lives."""

    bind: str = knob("127.0.0.1:8080", "", parse=_bind)
    runtime_socket: str = knob("/run/rempart/haproxy.sock", "")
    map_dir: str = knob("", '"" = <data_dir>/shed (made absolute for the HAProxy configuration)')
    queue_timeout: float = knob(
        1.0, "seconds a request may wait for an upstream slot", ge=0.001, le=3600
    )
    client_timeout: float = knob(30.0, "", ge=0.001, le=3600)
    server_timeout: float = knob(30.0, "", ge=0.001, le=3600)
    connect_timeout: float = knob(5.0, "", ge=0.001, le=3600)
    maxconn: int = knob(
        0, "0 = fit the hard descriptor limit (RLIMIT_NOFILE), at most 4096", ge=0, le=10_000_000
    )
    global_lines: tuple[str, ...] = knob(
        (),
        'extra lines for HAProxy\'s global section, e.g. ["no strict-limits"]',
        parse=_global_lines,
        show=list,
    )


@section(
    "shed", parse=lambda table: parse_shed(table), shown_by_default=False, reference=_REFERENCE
)
@dataclass(frozen=True, slots=True)
class ShedSettings:
    """Everything admission control needs; ``parse_shed({})`` gives the defaults."""

    default_class: Criticality = Criticality.SHEDDABLE_PLUS
    retry_after: int = 5
    interval: float = 0.25
    limiter: LimiterSettings = field(default_factory=LimiterSettings)
    episodes: EpisodeSettings = field(default_factory=EpisodeSettings)
    client_rate: dict[Criticality, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    haproxy: HAProxySettings = field(default_factory=HAProxySettings)
    services: tuple[Service, ...] = ()
    routes: tuple[Route, ...] = ()

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)


def _table(value: object, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(key, "must be a table")
    return value


def _unknown(table: dict[str, Any], allowed: set[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            raise _error(f"{key}.{name}", f"unknown setting (known: {', '.join(sorted(allowed))})")


def _number(
    table: dict[str, Any], name: str, key: str, default: float, low: float, high: float
) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _error(f"{key}.{name}", f"must be a number, got {value!r}")
    if not low <= value <= high:
        raise _error(f"{key}.{name}", f"must be between {low} and {high}, got {value!r}")
    return float(value)


def _integer(table: dict[str, Any], name: str, key: str, default: int, low: int, high: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(f"{key}.{name}", f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _error(f"{key}.{name}", f"must be between {low} and {high}, got {value!r}")
    return value


def _string(table: dict[str, Any], name: str, key: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str):
        raise _error(f"{key}.{name}", f"must be a string, got {value!r}")
    return value


def _class(value: object, key: str) -> Criticality:
    if not isinstance(value, str):
        raise _error(key, f"must be a class name, got {value!r}")
    try:
        return Criticality.parse(value)
    except ValueError as exc:
        raise _error(key, str(exc)) from None


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SLOT = "\x00"  # stands for one placeholder while the rest of an address is checked


def expand(text: str, environ: Mapping[str, str]) -> str | None:
    """``text`` with its ``${VAR}`` placeholders replaced from ``environ`` (None: one unset)."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in environ:
            missing.append(match.group(1))
            return ""
        return environ[match.group(1)]

    expanded = _PLACEHOLDER.sub(value, text)
    return None if missing else expanded


def check_address(text: str, key: str) -> None:
    """``host:port`` where the whole address, the host or the port may be an HAProxy
    environment placeholder ``${NAME}`` (expanded by HAProxy at start; checked then)."""
    if "$" not in text:
        parse_address(text, key)
        return
    skeleton = _PLACEHOLDER.sub(_SLOT, text)
    if "$" in skeleton or any(c.isspace() or c in "\"'\\#" for c in skeleton):
        raise _error(
            key,
            f"{text!r}: HAProxy placeholders are written ${{NAME}} (letters, digits, _), "
            "alone or as the host or the port of host:port",
        )
    if skeleton == _SLOT:
        return  # the whole address comes from the environment
    host, sep, port = skeleton.rpartition(":")
    if not sep or not host or not port:
        raise _error(key, f"must be host:port or ${{VAR}}, got {text!r}")
    if port != _SLOT and (not port.isdigit() or not 0 < int(port) < 65536):
        raise _error(key, f"{port!r} is not a port (1-65535) in {text!r}")
    if host != _SLOT:
        if _SLOT in host:
            raise _error(key, f"a placeholder must be the whole host or port in {text!r}")
        parse_address(f"{host}:1", key)


def parse_address(text: str, key: str) -> tuple[str, int]:
    """``host:port`` (IPv4, ``[IPv6]`` or a name) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _error(key, f"must be host:port, got {text!r}")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            HostPattern.parse(host)
        except ValueError:
            raise _error(key, f"{host!r} is not an address or host name") from None
    return host, int(port)


def _limiter(table: dict[str, Any]) -> LimiterSettings:
    if "initial" not in table:  # the default start, kept within the configured bounds
        defaults = LimiterSettings()
        low = table.get("min", defaults.min_limit)
        high = table.get("max", defaults.max_limit)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            table = {**table, "initial": max(low, min(defaults.initial, high))}
    return from_table(LimiterSettings, table, "shed.limiter")


def _services(value: object) -> tuple[Service, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _error("shed.services", "must be an array of tables ([[shed.services]])")
    services: list[Service] = []
    for index, raw in enumerate(value):
        key = f"shed.services[{index}]"
        table = _table(raw, key)
        _unknown(table, {"name", "upstream", "probe_path"}, key)
        name = _string(table, "name", key, "")
        if not name.isidentifier():
            raise _error(f"{key}.name", f"must be a simple identifier, got {name!r}")
        if any(s.name == name for s in services):
            raise _error(f"{key}.name", f"service {name!r} is defined twice")
        if "upstream" not in table:
            raise _error(f"{key}.upstream", "is required (host:port)")
        upstream = _string(table, "upstream", key, "")
        check_address(upstream, f"{key}.upstream")
        probe = _string(table, "probe_path", key, "/healthz")
        if probe:
            try:
                PathPattern.parse(probe)
            except ValueError as exc:
                raise _error(f"{key}.probe_path", str(exc)) from None
        services.append(Service(name, upstream, probe))
    return tuple(services)


def _routes(value: object, services: tuple[Service, ...]) -> tuple[Route, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _error("shed.routes", "must be an array of tables ([[shed.routes]])")
    routes: list[Route] = []
    for index, raw in enumerate(value):
        key = f"shed.routes[{index}]"
        table = _table(raw, key)
        _unknown(table, {"name", "class", "path", "host", "methods", "service"}, key)
        name = _string(table, "name", key, f"route{index}")
        if "class" not in table:
            raise _error(f"{key}.class", "is required")
        criticality = _class(table["class"], f"{key}.class")
        if "path" not in table:
            raise _error(f"{key}.path", "is required")
        try:
            path = PathPattern.parse(table["path"])
        except ValueError as exc:
            raise _error(f"{key}.path", str(exc)) from None
        try:
            host = HostPattern.parse(table.get("host", "*"))
        except ValueError as exc:
            raise _error(f"{key}.host", str(exc)) from None
        try:
            methods = parse_methods(table.get("methods"))
        except ValueError as exc:
            raise _error(f"{key}.methods", str(exc)) from None
        default_service = services[0].name if services else ""
        service = _string(table, "service", key, default_service)
        if services and all(s.name != service for s in services):
            raise _error(f"{key}.service", f"unknown service {service!r}")
        route = Route(name, criticality, RoutePattern(host, path, methods), service)
        for other_index, other in enumerate(routes):
            if route.pattern.overlaps(other.pattern):
                raise _error(
                    f"{key}.path",
                    f"pattern {route.pattern} overlaps shed.routes[{other_index}] "
                    f"({other.name!r}: {other.pattern}) without either containing the other",
                )
        routes.append(route)
    return tuple(routes)


def parse_shed(table: dict[str, Any] | None) -> ShedSettings:
    """Validate the ``[shed]`` table (a dict, as from ``tomllib``) into :class:`ShedSettings`."""
    table = _table(table, "shed")
    _unknown(
        table,
        {
            "default_class",
            "retry_after",
            "interval",
            "limiter",
            "episodes",
            "client_rate",
            "haproxy",
            "services",
            "routes",
        },
        "shed",
    )
    rates_table = _table(table.get("client_rate"), "shed.client_rate")
    _unknown(rates_table, {c.label for c in CLASSES}, "shed.client_rate")
    client_rate = {
        c: _integer(rates_table, c.label, "shed.client_rate", 0, 0, 10_000_000) for c in CLASSES
    }
    services = _services(table.get("services"))
    defaults = ShedSettings()
    return ShedSettings(
        default_class=_class(
            table.get("default_class", defaults.default_class.label), "shed.default_class"
        ),
        retry_after=_integer(table, "retry_after", "shed", defaults.retry_after, 0, 86400),
        interval=_number(table, "interval", "shed", defaults.interval, 0.01, 60),
        limiter=_limiter(_table(table.get("limiter"), "shed.limiter")),
        episodes=from_table(
            EpisodeSettings, _table(table.get("episodes"), "shed.episodes"), "shed.episodes"
        ),
        client_rate=client_rate,
        haproxy=from_table(
            HAProxySettings, _table(table.get("haproxy"), "shed.haproxy"), "shed.haproxy"
        ),
        services=services,
        routes=_routes(table.get("routes"), services),
    )


def with_map_dir(settings: ShedSettings, data_dir: str | Path) -> ShedSettings:
    """`settings` with an empty `[shed.haproxy] map_dir` made `<data_dir>/shed` (absolute, as
    it goes into the HAProxy configuration): nothing is written outside the data directory
    unless the operator names the place."""
    if settings.haproxy.map_dir:
        return settings
    where = str((Path(data_dir) / "shed").resolve())
    return dataclasses.replace(
        settings, haproxy=dataclasses.replace(settings.haproxy, map_dir=where)
    )


def example_table() -> dict[str, Any]:
    """The documented example `[shed]` table (one service `web` on 127.0.0.1:8081)."""
    doc = (__doc__ or "").split("::", 1)[1].split("Errors raise", 1)[0]
    return tomllib.loads(textwrap.dedent(doc))["shed"]
