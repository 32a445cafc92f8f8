"""Simulator: user population, attacks, runners, scoring and baselines.

The pipeline is the module list: `scenario` (TOML) → `world` (`population`, `legit`, `attacks`,
`passwords`, `useragents`, `network`) → `runner` (in-process, virtual clock) or `http_runner`
(a running `rempart serve`) → a `defender.Defender` from `policies` → `outcome` → `scoring` →
`report`, `chart`, `detection`. `cli.sim` is the `rempart sim` command group.
"""
