"""Tests of the simulator (rempart.sim)."""
