"""Shared test fixtures: real components are required in CI and skipped (with the reason) elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rempart.engine import distinct


def need(component: str, available: bool, why: str) -> None:
    """Skip when a real component is missing, or fail if REMPART_REQUIRE_<COMPONENT>=1 (as in CI)."""
    if available:
        return
    message = f"{component} is not available: {why}"
    if os.environ.get(f"REMPART_REQUIRE_{component.upper()}") == "1":
        pytest.fail(message + f" (REMPART_REQUIRE_{component.upper()}=1)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _default_sketch_key() -> Iterator[None]:
    """Each test counts with the default sketch key: a Service built in an earlier test keys the
    process-wide item hash with its own random secret, which moves bits and changes small counts."""
    yield
    distinct.use_default_key()
