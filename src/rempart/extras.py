"""Optional dependencies (the extras of pyproject.toml): import one, or fail naming the extra.

Core dependencies are imported plainly wherever they are used; only an extra goes through
`require`, and only when the feature that needs it is used, so a missing extra is a clear error
at that moment rather than a feature that silently switched itself off.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`module`, imported; MissingExtra naming `extra` if its distribution is not installed.
    A module that is installed but fails while importing raises its own error, unchanged."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name != top:
            raise
        raise MissingExtra(
            f"{feature} needs the {top!r} package: pip install 'rempart[{extra}]'"
        ) from None
