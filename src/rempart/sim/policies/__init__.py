"""The policies the simulator scores: four baselines and Rempart's engine, by name.

Owns the registry (`NAMES`, `make`): each policy is a `Defender` in its own module.
"""

from __future__ import annotations

from rempart.sim.defender import Defender
from rempart.sim.world import World

NAMES = ("none", "fail2ban", "closure", "wforce", "rempart")


def make(name: str, world: World, config: str | None = None) -> Defender:
    """A fresh defender (no state) for one run over `world`; `config` is Rempart's TOML."""
    if name == "none":
        from rempart.sim.policies.none import NoProtection

        return NoProtection()
    if name == "fail2ban":
        from rempart.sim.policies.fail2ban import Fail2Ban

        return Fail2Ban()
    if name == "closure":
        from rempart.sim.policies.closure import ProtocolClosure

        return ProtocolClosure()
    if name == "wforce":
        from rempart.sim.policies.wforce import WforceExample

        return WforceExample()
    if name == "rempart":
        from rempart.sim.policies.rempart import RempartEngine

        return RempartEngine.for_world(world, config)
    raise ValueError(f"unknown policy {name!r}; one of {', '.join(NAMES)}")
