"""Loopback-only test bed for admission control: a bounded-capacity upstream and a load generator.

Used by `benchmarks/shed_haproxy.py`, `benchmarks/shed_asgi.py` and the shed tests; every address is checked to be loopback and
every run is bounded in time and in connection count.
"""
