"""The `[shed.blocklist]` table: whether and how `rempart serve` feeds the block list to HAProxy."""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass

import tomli_w

from rempart.config import ConfigError, from_table, knob, section
from rempart.model import Protocol


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


@dataclass(frozen=True, slots=True)
class StandingSettings:
    enabled: bool = knob(
        True,
        "Keep HAProxy's standing.map of sources in good standing (a login succeeded from them "
        "recently): within its class, such a source skips the random admission cut and is "
        "queued before strangers (only where [shed] services are configured).",
    )
    ttl: float = knob(
        3600.0,
        "Seconds a source keeps good standing after its last successful login (HAProxy "
        "ignores a mark past its time even if Rempart is down).",
        ge=1,
        le=30 * 86400,
    )
    max_logins: int = knob(
        10,
        "Most distinct logins that may succeed from one address within ttl for it to keep "
        "good standing; an address shared by more accounts (CGNAT, office) gets none.",
        ge=1,
        le=100_000,
    )
    protocols: tuple[str, ...] = knob(
        (),
        'Protocols whose successful logins give standing (e.g. ["web", "app"]); empty: any.',
    )
    max_sources: int = knob(
        1_000_000, "Most sources tracked at once (bounded memory).", ge=1, le=100_000_000
    )
    sweep_interval: float = knob(
        1.0,
        "Seconds between pushes of new standing to HAProxy, sweeps for expired standing and "
        "retries of a failed push.",
        ge=0.05,
        le=60,
    )
    check_interval: float = knob(
        5.0,
        "Seconds between checks that HAProxy was not restarted; a new HAProxy gets a resync.",
        ge=0.5,
        le=3600,
    )
    batch_bytes: int = knob(
        8000, "Most bytes of map commands in one runtime-socket exchange.", ge=256, le=1_000_000
    )

    def check(self) -> None:
        valid = {p.value for p in Protocol}
        for name in self.protocols:
            if name not in valid:
                raise ConfigError(
                    f"unknown protocol {name!r} (valid: {', '.join(sorted(valid))})",
                    "shed.standing.protocols",
                )


def _standing_reference() -> str:
    out = [
        "# [shed.standing]: sources a login recently succeeded from, kept in HAProxy's",
        "# standing.map; within a class they skip the random admission cut and are queued",
        "# first; active wherever [shed] services are configured.",
        "# [shed.standing]",
    ]
    for f in dataclasses.fields(StandingSettings):
        out += [f"#   {line}" for line in textwrap.wrap(f.metadata["doc"], 90)]
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        out.append("# " + tomli_w.dumps({f.name: default}).strip())
    return "\n".join(out) + "\n"


section(
    "shed.standing",
    parse=lambda table: from_table(StandingSettings, table or {}, "shed.standing"),
    reference=_standing_reference(),
    shown_by_default=False,
)(StandingSettings)
