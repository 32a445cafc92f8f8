"""The `[shed.blocklist]` table: whether and how `rempart serve` feeds the block list to HAProxy."""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass

import tomli_w

from rempart.config import from_table, knob, section


@dataclass(frozen=True, slots=True)
class HostileFeedSettings:
    enabled: bool = knob(
        True,
        "Feed the block list to the HAProxy of the generated configuration (only where [shed] "
        "services are configured); false leaves blocklist.map empty.",
    )
    sweep_interval: float = knob(
        1.0,
        "Seconds between sweeps for expired entries and retries of a failed push (changes are "
        "pushed at once).",
        ge=0.05,
        le=60,
    )
    check_interval: float = knob(
        5.0,
        "Seconds between checks that HAProxy was not restarted (its pid); a new HAProxy, or "
        "one reachable again, gets a full resync of its map.",
        ge=0.5,
        le=3600,
    )
    reconcile_interval: float = knob(
        30.0,
        "Seconds between rebuilds of the desired map from the lists themselves, which also "
        "hold changes no event announced on this node (a Redis peer's); 0: never.",
        ge=0,
        le=86400,
    )
    batch_bytes: int = knob(
        8000,
        "Most bytes of map commands sent in one runtime-socket exchange (HAProxy reads one "
        "line of at most tune.bufsize, 16384 by default).",
        ge=256,
        le=1_000_000,
    )


def _reference() -> str:
    """Commented like [shed]'s: the table matters only where [shed] services are configured."""
    out = [
        "# [shed.blocklist]: the block list's addresses and networks (automatic and operator",
        "# entries, minus what an allow entry covers) kept in HAProxy's blocklist.map through the",
        "# runtime API, with expiry; active wherever [shed] services are configured.",
        "# [shed.blocklist]",
    ]
    for f in dataclasses.fields(HostileFeedSettings):
        out += [f"#   {line}" for line in textwrap.wrap(f.metadata["doc"], 90)]
        out.append("# " + tomli_w.dumps({f.name: f.default}).strip())
    return "\n".join(out) + "\n"


section(
    "shed.blocklist",
    parse=lambda table: from_table(HostileFeedSettings, table or {}, "shed.blocklist"),
    reference=_reference(),
    shown_by_default=False,
)(HostileFeedSettings)
