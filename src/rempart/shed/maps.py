"""The admission and hostile-source map files HAProxy reads at start and Rempart updates live.

``admission.map``: ``<service>/<class> <percent admitted>``, one line per service and class.
``hostile.map``: ``<address or CIDR> 1`` for every source Rempart judged hostile.
Files are written atomically. A restarted HAProxy keeps the hostile sources; admission starts
fully open (``ensure_maps`` when the configuration is generated, the control loop when it starts)
and the loop cuts it again as soon as it measures an overload.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from rempart.shed.blocklist_map import BLOCKLIST_MAP, write_blocklist
from rempart.shed.classes import CLASSES, Criticality
from rempart.shed.standing_map import STANDING_MAP, write_standing

ADMISSION_MAP = "admission.map"
HOSTILE_MAP = "hostile.map"


def map_key(service: str, cls: Criticality) -> str:
    return f"{service}/{cls.label}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)


def write_admission(map_dir: Path, shares: Mapping[str, Mapping[Criticality, int]]) -> Path:
    """Write ``shares[service][class]`` percentages."""
    path = map_dir / ADMISSION_MAP
    lines = [
        f"{map_key(svc, cls)} {int(pct)}\n"
        for svc, row in shares.items()
        for cls, pct in row.items()
    ]
    _write_atomic(path, "".join(lines))
    return path


def read_admission(map_dir: Path) -> dict[str, dict[Criticality, int]]:
    """The shares stored in ``admission.map`` (empty when the file is absent)."""
    path = map_dir / ADMISSION_MAP
    shares: dict[str, dict[Criticality, int]] = {}
    if not path.exists():
        return shares
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) != 2 or "/" not in parts[0]:
            continue
        svc, label = parts[0].split("/", 1)
        try:
            shares.setdefault(svc, {})[Criticality.parse(label)] = max(0, min(100, int(parts[1])))
        except ValueError:
            continue
    return shares


def read_hostile(map_dir: Path) -> list[str]:
    """The sources stored in ``hostile.map`` (empty when the file is absent)."""
    path = map_dir / HOSTILE_MAP
    if not path.exists():
        return []
    return [
        line.split()[0] for line in path.read_text(encoding="ascii").splitlines() if line.split()
    ]


def write_hostile(map_dir: Path, sources: Iterable[str]) -> Path:
    path = map_dir / HOSTILE_MAP
    _write_atomic(path, "".join(f"{source} 1\n" for source in sorted(set(sources))))
    return path


def full_admission(services: Iterable[str]) -> dict[str, dict[Criticality, int]]:
    """Every class of every service admitted: the sane state to start from."""
    return {svc: dict.fromkeys(CLASSES, 100) for svc in services}


def reset_admission(map_dir: Path, services: Iterable[str]) -> Path:
    """Rewrite ``admission.map`` with every class admitted (and only these services)."""
    map_dir.mkdir(parents=True, exist_ok=True)
    return write_admission(map_dir, full_admission(services))


def ensure_maps(map_dir: Path, services: Iterable[str]) -> None:
    """Map files for a HAProxy about to start: admission reset to everything admitted (a new
    run must not inherit the shares of an overload that is over; the control loop cuts them
    again within a tick if it is not); the hostile sources kept, the file created if absent."""
    reset_admission(map_dir, services)
    if not (map_dir / HOSTILE_MAP).exists():
        write_hostile(map_dir, [])
    if not (map_dir / BLOCKLIST_MAP).exists():
        write_blocklist(map_dir, [])
    if not (map_dir / STANDING_MAP).exists():
        write_standing(map_dir, {})
