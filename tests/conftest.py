"""Shared test fixtures: real components are required in CI and skipped (with the reason) elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rempart.engine import distinct


def need(component: str, available: bool, why: str) -> None:
    """Skip when a real component is missing; fail instead under REMPART_REQUIRE_<COMPONENT>=1
    (set by .ci/run) or on any CI runner (CI=true), where a skip would hide a missing one."""
    if available:
        return
    message = f"{component} is not available: {why}"
    flag = f"REMPART_REQUIRE_{component.upper()}"
    if os.environ.get(flag) == "1":
        pytest.fail(f"{message} ({flag}=1)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI={os.environ['CI']})")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _default_sketch_key() -> Iterator[None]:
    """Each test counts with the default sketch key: a Service built in an earlier test keys the
    process-wide item hash with its own random secret, which moves bits and changes small counts."""
    yield
    distinct.use_default_key()


@pytest.fixture(autouse=True)
def _process_umask() -> Iterator[None]:
    """Each test starts with the umask the suite started with: a Service built in process sets
    077 (data files private), and files a later test makes for Dovecot's or Postfix's
    unprivileged processes would be unreadable to them."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)
