"""The control loop's observable state: per service limit, latency and per class admission."""

from __future__ import annotations

from dataclasses import dataclass, field

from rempart.shed.classes import CLASSES, Criticality


@dataclass
class ClassState:
    """One service's view of one class."""

    admitted_pct: int = 100  # share of requests admitted (the value in admission.map)
    demand_rps: float = 0.0  # requests per second arriving (after per-client limits)
    shed_rps: float = 0.0  # requests per second answered 503 by admission
    requests_total: int = 0  # since HAProxy started tracking the class
    shed_total: int = 0


@dataclass
class ServiceState:
    name: str
    limit: float
    rtt: float | None = None  # latest RTT sample, seconds
    rtt_noload: float | None = None
    gradient: float = 1.0
    inflight: int = 0
    queued: int = 0
    error_ratio: float = 0.0
    overloaded: bool = False
    measuring: bool = False  # re-measuring the no-load RTT (concurrency pinned low)
    capacity: float | None = None  # requests/s admission hands out (None: no latency known yet)
    classes: dict[Criticality, ClassState] = field(
        default_factory=lambda: {c: ClassState() for c in CLASSES}
    )

    def shares(self) -> dict[Criticality, int]:
        return {c: s.admitted_pct for c, s in self.classes.items()}


@dataclass
class ControllerState:
    """What ``status``, ``/status.json`` and the metrics collector read."""

    services: dict[str, ServiceState] = field(default_factory=dict)
    runtime_ok: bool = True  # False: HAProxy unreachable, the data plane keeps its last state
    last_error: str | None = None
    runtime_failures: int = 0
    ticks: int = 0
    updated_at: float = 0.0  # unix time of the last successful tick
