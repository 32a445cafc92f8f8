"""Autonomous-system lookup: which network operator (ASN) announces a source address.

Rempart ships no ASN data (it changes daily and its licences vary); the operator points
`[asn] database` at an IP-to-ASN table in the tab-separated format of iptoasn.com's
`ip2asn-combined.tsv` (plain or gzip), one range per line:

    range_start <TAB> range_end <TAB> AS_number <TAB> country_code <TAB> AS_description

IPv4 and IPv6 ranges may be mixed. AS number 0 ("Not routed") means no ASN. Ranges are kept in
sorted arrays and found by binary search: about a microsecond per lookup and 12 bytes per IPv4
range, with no per-range Python object. A malformed line is refused with its line number and
field, so a broken download never half-loads.
"""

from __future__ import annotations

import bisect
import gzip
import socket
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.config import AsnSettings


class AsnTableError(ValueError):
    """The ASN table cannot be loaded; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class AsnInfo:
    asn: int
    country: str
    name: str


class AsnTable:
    """Sorted, non-overlapping address ranges mapped to AS numbers."""

    def __init__(self) -> None:
        self._v4_starts = array("I")
        self._v4_ends = array("I")
        self._v4_asns = array("I")
        self._v6_starts: list[int] = []
        self._v6_ends: list[int] = []
        self._v6_asns = array("I")
        self.names: dict[int, AsnInfo] = {}

    @property
    def ranges(self) -> int:
        return len(self._v4_starts) + len(self._v6_starts)

    @classmethod
    def load(cls, path: str | Path) -> AsnTable:
        path = Path(path)
        try:
            opener: Any = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                return cls.parse(fh, str(path))
        except OSError as exc:
            raise AsnTableError(
                f"[asn] database: cannot read {path}: {exc.strerror or exc}"
            ) from None

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<table>") -> AsnTable:
        v4: list[tuple[int, int, int]] = []
        v6: list[tuple[int, int, int]] = []
        names: dict[int, AsnInfo] = {}
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise AsnTableError(
                    f"{source}:{number}: expected range_start, range_end, AS_number "
                    f"(tab-separated), got {len(fields)} field(s)"
                )
            start, v6_start = _address(fields[0], source, number, "range_start")
            end, v6_end = _address(fields[1], source, number, "range_end")
            if v6_start != v6_end:
                raise AsnTableError(f"{source}:{number}: range_start and range_end mix IPv4/IPv6")
            if end < start:
                raise AsnTableError(f"{source}:{number}: range_end is before range_start")
            try:
                asn = int(fields[2])
                if not 0 <= asn < 2**32:
                    raise ValueError
            except ValueError:
                raise AsnTableError(
                    f"{source}:{number}: field AS_number: not an AS number: {fields[2][:32]!r}"
                ) from None
            if asn == 0:
                continue  # "Not routed"
            (v6 if v6_start else v4).append((start, end, asn))
            if asn not in names:
                country = fields[3].strip() if len(fields) > 3 else ""
                name = fields[4].strip() if len(fields) > 4 else ""
                names[asn] = AsnInfo(asn, country, name[:200])
        table = cls()
        table._fill(v4, v6, source)
        table.names = names
        return table

    def _fill(
        self, v4: list[tuple[int, int, int]], v6: list[tuple[int, int, int]], source: str
    ) -> None:
        for ranges, starts, ends, asns in (
            (v4, self._v4_starts, self._v4_ends, self._v4_asns),
            (v6, self._v6_starts, self._v6_ends, self._v6_asns),
        ):
            ranges.sort()
            last_end = -1
            for start, end, asn in ranges:
                if start <= last_end:
                    raise AsnTableError(
                        f"{source}: overlapping ranges at {_show(start, ranges is v6)}"
                    )
                starts.append(start)
                ends.append(end)
                asns.append(asn)
                last_end = end

    def lookup(self, packed: bytes) -> int:
        """The AS number announcing a packed IPv4 (4 bytes) or IPv6 (16 bytes) address; 0 if
        none."""
        value = int.from_bytes(packed)
        starts: Sequence[int]  # compact arrays for IPv4, lists of big ints for IPv6
        ends: Sequence[int]
        asns: Sequence[int]
        if len(packed) == 4:
            starts, ends, asns = self._v4_starts, self._v4_ends, self._v4_asns
        else:
            starts, ends, asns = self._v6_starts, self._v6_ends, self._v6_asns
        i = bisect.bisect_right(starts, value) - 1
        if i >= 0 and value <= ends[i]:
            return asns[i]
        return 0

    def describe(self, asn: int) -> str:
        info = self.names.get(asn)
        if info is None:
            return f"AS{asn}"
        return f"AS{asn} {info.name} ({info.country})" if info.country else f"AS{asn} {info.name}"


def _address(text: str, source: str, number: int, field: str) -> tuple[int, bool]:
    text = text.strip()
    try:
        if ":" in text:
            return int.from_bytes(socket.inet_pton(socket.AF_INET6, text)), True
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text)), False
    except OSError:
        raise AsnTableError(
            f"{source}:{number}: field {field}: not an IP address: {text[:64]!r}"
        ) from None


def _show(value: int, v6: bool) -> str:
    if v6:
        return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16))
    return socket.inet_ntop(socket.AF_INET, value.to_bytes(4))


def load_configured(settings: AsnSettings) -> AsnTable | None:
    """The table named by `[asn] database`, or None when unset."""
    return AsnTable.load(settings.database) if settings.database else None
