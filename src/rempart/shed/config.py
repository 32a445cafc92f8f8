"""The ``[shed]`` TOML table parsed into typed, validated settings with documented defaults.

Example (every key is optional except ``services`` when the HAProxy data plane is used)::

    [shed]
    default_class = "sheddable_plus"   # class of requests no route matches
    retry_after = 5                    # seconds, sent with every shed 503/429
    interval = 0.25                    # control-loop period, seconds

    [shed.limiter]                     # adaptive concurrency limit (gradient of RTT)
    initial = 20                       # starting concurrency limit per upstream
    min = 2                            # never below
    max = 1000                         # never above
    tolerance = 1.5                    # RTT may grow this much over no-load RTT before shrinking
    smoothing = 0.2                    # weight of a new limit estimate (0..1]
    error_ratio = 0.05                 # upstream 5xx/error share that halves the limit
    utilization = 0.85                 # share of the estimated capacity admission hands out
    minrtt_interval = 10.0             # re-measure the no-load RTT this often, seconds (0: never)
    minrtt_jitter = 0.15               # ± share of the interval, randomised
    minrtt_duration = 0.3              # seconds the concurrency stays pinned while measuring
    minrtt_concurrency = 3             # concurrency while measuring (critical demand is kept)

    [shed.client_rate]                 # per source address and class, requests per 10 s (0: none)
    critical_plus = 0
    critical = 0
    sheddable_plus = 0
    sheddable = 0

    [shed.haproxy]
    bind = "127.0.0.1:8080"
    runtime_socket = "/run/rempart/haproxy.sock"
    map_dir = ""                       # "" = <data_dir>/shed; HAProxy must be able to read it
    queue_timeout = 1.0                # seconds a request may wait for an upstream slot
    client_timeout = 30.0
    server_timeout = 30.0
    connect_timeout = 5.0
    maxconn = 20000

    [[shed.services]]
    name = "web"
    upstream = "127.0.0.1:8081"
    probe_path = "/healthz"            # the controller's own latency probe ("" disables it)

    [[shed.routes]]
    name = "payments"
    class = "critical_plus"
    path = "/payments/*"
    host = "*"                         # default: any host
    methods = ["POST"]                 # default: any method
    service = "web"                    # default: the first service

Errors raise :class:`ShedConfigError` naming the offending key (``shed.routes[2].path``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rempart.shed.classes import CLASSES, Criticality
from rempart.shed.patterns import HostPattern, PathPattern, RoutePattern, parse_methods


class ShedConfigError(ValueError):
    """A ``[shed]`` setting is invalid; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


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
    host: str
    port: int
    probe_path: str = "/healthz"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """Gradient concurrency limiter (Netflix concurrency-limits ``Gradient2``, Envoy adaptive)."""

    initial: float = 20.0
    min_limit: float = 2.0
    max_limit: float = 1000.0
    tolerance: float = 1.5
    smoothing: float = 0.2
    error_ratio: float = 0.05
    utilization: float = 0.85
    minrtt_interval: float = 10.0
    minrtt_jitter: float = 0.15
    minrtt_duration: float = 0.3
    minrtt_concurrency: float = 3.0


@dataclass(frozen=True, slots=True)
class HAProxySettings:
    """How the generated HAProxy configuration listens and where its runtime state lives."""

    bind: str = "127.0.0.1:8080"
    runtime_socket: str = "/run/rempart/haproxy.sock"
    map_dir: str = ""  # "" = <data_dir>/shed (see with_map_dir)
    queue_timeout: float = 1.0
    client_timeout: float = 30.0
    server_timeout: float = 30.0
    connect_timeout: float = 5.0
    maxconn: int = 4096


@dataclass(frozen=True, slots=True)
class ShedSettings:
    """Everything admission control needs; ``parse_shed({})`` gives the defaults."""

    default_class: Criticality = Criticality.SHEDDABLE_PLUS
    retry_after: int = 5
    interval: float = 0.25
    limiter: LimiterSettings = field(default_factory=LimiterSettings)
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
        raise ShedConfigError(key, "must be a table")
    return value


def _unknown(table: dict[str, Any], allowed: set[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            raise ShedConfigError(
                f"{key}.{name}", f"unknown setting (known: {', '.join(sorted(allowed))})"
            )


def _number(
    table: dict[str, Any], name: str, key: str, default: float, low: float, high: float
) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ShedConfigError(f"{key}.{name}", f"must be a number, got {value!r}")
    if not low <= value <= high:
        raise ShedConfigError(f"{key}.{name}", f"must be between {low} and {high}, got {value!r}")
    return float(value)


def _integer(table: dict[str, Any], name: str, key: str, default: int, low: int, high: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShedConfigError(f"{key}.{name}", f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ShedConfigError(f"{key}.{name}", f"must be between {low} and {high}, got {value!r}")
    return value


def _string(table: dict[str, Any], name: str, key: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str):
        raise ShedConfigError(f"{key}.{name}", f"must be a string, got {value!r}")
    return value


def _class(value: object, key: str) -> Criticality:
    if not isinstance(value, str):
        raise ShedConfigError(key, f"must be a class name, got {value!r}")
    try:
        return Criticality.parse(value)
    except ValueError as exc:
        raise ShedConfigError(key, str(exc)) from None


def parse_address(text: str, key: str) -> tuple[str, int]:
    """``host:port`` (IPv4, ``[IPv6]`` or a name) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ShedConfigError(key, f"must be host:port, got {text!r}")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            HostPattern.parse(host)
        except ValueError:
            raise ShedConfigError(key, f"{host!r} is not an address or host name") from None
    return host, int(port)


def _limiter(table: dict[str, Any]) -> LimiterSettings:
    key = "shed.limiter"
    _unknown(
        table,
        {
            "initial",
            "min",
            "max",
            "tolerance",
            "smoothing",
            "error_ratio",
            "utilization",
            "minrtt_interval",
            "minrtt_jitter",
            "minrtt_duration",
            "minrtt_concurrency",
        },
        key,
    )
    low = _number(table, "min", key, 2, 1, 1e6)
    high = _number(table, "max", key, 1000, 1, 1e6)
    if low > high:
        raise ShedConfigError(f"{key}.min", f"must not exceed {key}.max ({high:g})")
    return LimiterSettings(
        initial=_number(table, "initial", key, max(low, min(20, high)), low, high),
        min_limit=low,
        max_limit=high,
        tolerance=_number(table, "tolerance", key, 1.5, 1.0, 10.0),
        smoothing=_number(table, "smoothing", key, 0.2, 0.01, 1.0),
        error_ratio=_number(table, "error_ratio", key, 0.05, 0.0, 1.0),
        utilization=_number(table, "utilization", key, 0.85, 0.05, 1.0),
        minrtt_interval=_number(table, "minrtt_interval", key, 10.0, 0.0, 86400.0),
        minrtt_jitter=_number(table, "minrtt_jitter", key, 0.15, 0.0, 0.5),
        minrtt_duration=_number(table, "minrtt_duration", key, 0.3, 0.01, 60.0),
        minrtt_concurrency=_number(table, "minrtt_concurrency", key, 3, 1, 1e6),
    )


def _haproxy(table: dict[str, Any]) -> HAProxySettings:
    key = "shed.haproxy"
    defaults = HAProxySettings()
    _unknown(table, set(HAProxySettings.__slots__), key)
    bind = _string(table, "bind", key, defaults.bind)
    parse_address(bind, f"{key}.bind")
    return HAProxySettings(
        bind=bind,
        runtime_socket=_string(table, "runtime_socket", key, defaults.runtime_socket),
        map_dir=_string(table, "map_dir", key, defaults.map_dir),
        queue_timeout=_number(table, "queue_timeout", key, defaults.queue_timeout, 0.001, 3600),
        client_timeout=_number(table, "client_timeout", key, defaults.client_timeout, 0.001, 3600),
        server_timeout=_number(table, "server_timeout", key, defaults.server_timeout, 0.001, 3600),
        connect_timeout=_number(
            table, "connect_timeout", key, defaults.connect_timeout, 0.001, 3600
        ),
        maxconn=_integer(table, "maxconn", key, defaults.maxconn, 1, 10_000_000),
    )


def _services(value: object) -> tuple[Service, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ShedConfigError("shed.services", "must be an array of tables ([[shed.services]])")
    services: list[Service] = []
    for index, raw in enumerate(value):
        key = f"shed.services[{index}]"
        table = _table(raw, key)
        _unknown(table, {"name", "upstream", "probe_path"}, key)
        name = _string(table, "name", key, "")
        if not name.isidentifier():
            raise ShedConfigError(f"{key}.name", f"must be a simple identifier, got {name!r}")
        if any(s.name == name for s in services):
            raise ShedConfigError(f"{key}.name", f"service {name!r} is defined twice")
        if "upstream" not in table:
            raise ShedConfigError(f"{key}.upstream", "is required (host:port)")
        host, port = parse_address(_string(table, "upstream", key, ""), f"{key}.upstream")
        probe = _string(table, "probe_path", key, "/healthz")
        if probe:
            try:
                PathPattern.parse(probe)
            except ValueError as exc:
                raise ShedConfigError(f"{key}.probe_path", str(exc)) from None
        services.append(Service(name, host, port, probe))
    return tuple(services)


def _routes(value: object, services: tuple[Service, ...]) -> tuple[Route, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ShedConfigError("shed.routes", "must be an array of tables ([[shed.routes]])")
    routes: list[Route] = []
    for index, raw in enumerate(value):
        key = f"shed.routes[{index}]"
        table = _table(raw, key)
        _unknown(table, {"name", "class", "path", "host", "methods", "service"}, key)
        name = _string(table, "name", key, f"route{index}")
        if "class" not in table:
            raise ShedConfigError(f"{key}.class", "is required")
        criticality = _class(table["class"], f"{key}.class")
        if "path" not in table:
            raise ShedConfigError(f"{key}.path", "is required")
        try:
            path = PathPattern.parse(table["path"])
        except ValueError as exc:
            raise ShedConfigError(f"{key}.path", str(exc)) from None
        try:
            host = HostPattern.parse(table.get("host", "*"))
        except ValueError as exc:
            raise ShedConfigError(f"{key}.host", str(exc)) from None
        try:
            methods = parse_methods(table.get("methods"))
        except ValueError as exc:
            raise ShedConfigError(f"{key}.methods", str(exc)) from None
        default_service = services[0].name if services else ""
        service = _string(table, "service", key, default_service)
        if services and all(s.name != service for s in services):
            raise ShedConfigError(f"{key}.service", f"unknown service {service!r}")
        route = Route(name, criticality, RoutePattern(host, path, methods), service)
        for other_index, other in enumerate(routes):
            if route.pattern.overlaps(other.pattern):
                raise ShedConfigError(
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
    return ShedSettings(
        default_class=_class(table.get("default_class", "sheddable_plus"), "shed.default_class"),
        retry_after=_integer(table, "retry_after", "shed", 5, 0, 86400),
        interval=_number(table, "interval", "shed", 0.25, 0.01, 60),
        limiter=_limiter(_table(table.get("limiter"), "shed.limiter")),
        client_rate=client_rate,
        haproxy=_haproxy(_table(table.get("haproxy"), "shed.haproxy")),
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
