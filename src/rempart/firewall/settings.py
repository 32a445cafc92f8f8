"""The `[nftables]` table: whether and how `rempart serve` keeps the nftables sets in sync."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rempart.config import ConfigError, knob, section

HOOKS = ("input", "forward", "prerouting")
ACTIONS = ("drop", "reject")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


def _table(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"must be a name of letters, digits and _ (at most 32), got {value!r}")
    return value


def _command(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError('must be a non-empty list of strings, e.g. ["nft"] or ["sudo", "nft"]')
    return tuple(value)


@section(
    "nftables",
    doc="Keep an nftables table (`inet rempart`) in sync with the block and allow lists, so "
    "blocked addresses and networks are dropped before they reach any daemon. Needs root or "
    "CAP_NET_ADMIN (or a `command` that has it); see docs/nftables.md.",
)
@dataclass(frozen=True, slots=True)
class NftSettings:
    enabled: bool = knob(
        False,
        "Run the sync inside `rempart serve` (off by default: it needs CAP_NET_ADMIN). "
        "`rempart nft` runs the same sync as a separate process against a running server.",
    )
    table: str = knob(
        "rempart",
        "Name of the inet table Rempart owns: it is deleted and regenerated at every full "
        "resync, so keep no rules of your own in it.",
        parse=_table,
        show=str,
    )
    hook: str = knob(
        "input",
        "Netfilter hook of the filtering chain: input (this host's daemons), forward (a router "
        "in front of them) or prerouting (earliest; drop only).",
        choices=HOOKS,
    )
    priority: int = knob(
        -10,
        "Chain priority (lower runs first; -10 is just before the usual filter chains at 0).",
        ge=-400,
        le=400,
    )
    action: str = knob(
        "drop",
        "What happens to packets from blocked sources: drop (silently) or reject (ICMP "
        "administratively prohibited; not at the prerouting hook). Allow-list entries are "
        "accepted by this chain first, whatever the block list says.",
        choices=ACTIONS,
    )
    command: tuple[str, ...] = knob(
        ("nft",),
        'The nft command, run with `-f -` once per batch: e.g. ["sudo", "-n", "nft"] or '
        '["ip", "netns", "exec", "edge", "nft"].',
        parse=_command,
        show=list,
    )
    batch_ms: float = knob(
        100.0,
        "Changes are coalesced for up to this long before one nft batch applies them.",
        gt=0,
        le=10_000,
    )
    batch_max: int = knob(
        10_000, "Most element changes in one nft batch (more wait for the next).", ge=1
    )
    check_s: float = knob(
        5.0,
        "How often the table's chain is looked for; a missing table or chain (nft flush "
        "ruleset, a firewall reload) triggers a full resync.",
        gt=0,
    )
    resync_s: float = knob(
        300.0,
        "Full resync period: the whole table regenerated from the lists (heals any drift). "
        "0: only at start and when needed.",
        ge=0,
    )
    retry_s: float = knob(
        2.0, "Wait before retrying after nft failed (doubling up to 60 s while it fails).", gt=0
    )
    timeout_s: float = knob(30.0, "An nft call running longer than this is killed.", gt=0)
    poll_s: float = knob(
        2.0,
        "`rempart nft` only: how often the server's lists are read (getBL / getWL).",
        gt=0,
    )

    def check(self) -> None:
        if self.hook == "prerouting" and self.action == "reject":
            raise ConfigError(
                "reject is not possible at the prerouting hook; use drop", "nftables.action"
            )
