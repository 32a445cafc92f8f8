"""Loopback-only test bed for admission control: a bounded-capacity upstream and a load generator.

Used by the integration tests and the benchmarks; every address is checked to be loopback and
every run is bounded in time and in connection count.
"""
