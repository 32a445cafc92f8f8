"""A read-only view of what HAProxy is enforcing now, for ``rempart shed status``.

Unlike the control loop it changes nothing: it reads the server limit, the admission map and the
class counters over the runtime socket.
"""

from __future__ import annotations

import time
from pathlib import Path

from rempart.shed.classes import CLASSES
from rempart.shed.config import ShedSettings
from rempart.shed.haproxy_config import CLASS_TABLE, SERVER, SHED_TABLE, backend_name
from rempart.shed.maps import ADMISSION_MAP, map_key
from rempart.shed.runtime import HAProxyRuntime
from rempart.shed.state import ControllerState, ServiceState


async def snapshot(settings: ShedSettings, runtime: HAProxyRuntime) -> ControllerState:
    """Raises :class:`~rempart.shed.runtime.RuntimeUnavailable` when HAProxy cannot be read."""
    rows = await runtime.show_stat()
    demand = await runtime.show_table(CLASS_TABLE)
    shed = await runtime.show_table(SHED_TABLE)
    admission_text = await runtime.command(
        f"show map {Path(settings.haproxy.map_dir) / ADMISSION_MAP}"
    )
    shares: dict[str, int] = {}
    for line in admission_text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            shares[parts[1]] = int(parts[2])
    state = ControllerState(updated_at=time.time())
    for service in settings.services:
        server = next(
            (
                r
                for r in rows
                if r["pxname"] == backend_name(service.name) and r["svname"] == SERVER
            ),
            {},
        )
        slim = server.get("slim") or "0"
        svc = ServiceState(service.name, limit=float(slim) if slim.isdigit() else 0.0)
        svc.inflight = int(server.get("scur") or 0)
        svc.queued = int(server.get("qcur") or 0)
        rtime = server.get("rtime") or ""
        svc.rtt = int(rtime) / 1000.0 if rtime.isdigit() else None
        for cls in CLASSES:
            key = map_key(service.name, cls)
            cs = svc.classes[cls]
            cs.admitted_pct = shares.get(key, 100)
            if key in demand:
                cs.demand_rps, cs.requests_total = float(demand[key].rate), demand[key].count
            if key in shed:
                cs.shed_rps, cs.shed_total = float(shed[key].rate), shed[key].count
        state.services[service.name] = svc
    return state
