"""Rempart: a self-hosted shield for logins and availability.

The decision hot path (`COMPILED_MODULES`) is compiled with mypyc by `pip install .` when a C
compiler is available; the same modules' Python sources are the reference and the fallback.
`REMPART_PURE_PYTHON=1` in the environment runs those sources even when the compiled modules are
installed (an import hook set up here, before any of them is imported), and so does a compiled
module older than its source (`STALE`: an edited editable checkout; rebuild with
`pip install -e .`); `compiled_core()` says which core is running.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import (
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
)
from importlib.util import find_spec
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

# The modules setup.py compiles (it reads this tuple without importing the package).
COMPILED_MODULES = (
    "rempart.model",
    "rempart.engine.windows",
    "rempart.engine.distinct",
    "rempart.engine.keys",
    "rempart.engine.familiarity",
    "rempart.engine.signals",
    "rempart.engine.engine",
    "rempart.engine.lists",
    "rempart.engine.exposure",
    "rempart.engine.campaign",
    "rempart.engine.families",
    "rempart.engine.events",
    "rempart.engine.records",
    "rempart.ops.chain",
    "rempart.engine.posture",
    "rempart.state.wire",
    "rempart.adapters.wforce_body",
    "rempart.engine.countercopy",
    "rempart.ops.live",
    "rempart.httpserver",
    "rempart.adapters.wforce",
)
# Hand-written C extensions built with them (`setup.py`), each beside its `.c` source; their
# pure-Python reference is chosen by the module that imports them (e.g. engine/keytable.py).
NATIVE_MODULES = (
    "rempart.engine._keytable",
    "rempart.engine._itemhash",
    "rempart.engine._packing",
    "rempart.engine._rings",
    "rempart.engine._distinct",
)
PURE_ENV = "REMPART_PURE_PYTHON"


class _SourceFinder(MetaPathFinder):
    """Finds the `.py` source of a compiled module ahead of its extension module."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in COMPILED_MODULES or not path:
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(fullname)
            if spec is not None:
                return spec
        return None


def pure_python_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def stale_build() -> list[str]:
    """Compiled modules older than their source (an editable checkout edited or checked out
    since `pip install -e .`): their sources must run instead, all of them."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.basename(os.path.dirname(here)) in ("site-packages", "dist-packages"):
        return []  # installed from a wheel: written together, whatever the file times say
    stale: list[str] = []
    for name in (*COMPILED_MODULES, *NATIVE_MODULES):
        base = os.path.join(here, *name.split(".")[1:])
        try:
            source = os.stat(base + (".c" if name in NATIVE_MODULES else ".py")).st_mtime
        except OSError:
            continue
        for suffix in EXTENSION_SUFFIXES:
            try:
                built = os.stat(base + suffix).st_mtime
            except OSError:
                continue
            if built < source:
                stale.append(name)
            break
    return stale


STALE = [] if pure_python_requested() else stale_build()


def native_attribute(module: str, name: str) -> Any:
    """`name` from `module`, one of `NATIVE_MODULES`; None when that module is not built, is
    older than its `.c`, or pure Python was asked for (its importer then uses its reference)."""
    if pure_python_requested() or module in STALE:
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


if (pure_python_requested() or set(STALE) & set(COMPILED_MODULES)) and not any(
    isinstance(f, _SourceFinder) for f in sys.meta_path
):
    sys.meta_path.insert(0, _SourceFinder())


def compiled_core() -> str:
    """ "mypyc" when every hot-path module runs compiled, "python" when none does (no compiler
    at install time, an editable checkout without a build, or REMPART_PURE_PYTHON=1), "mixed"
    otherwise (a stale build: rebuild). Looks the modules up without importing them."""
    compiled = 0
    modules: tuple[str, ...] = COMPILED_MODULES
    if not pure_python_requested():  # a native module is chosen at import, never run pure
        modules += tuple(name for name in NATIVE_MODULES if name not in STALE)
    for name in modules:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module is not None else None
        if origin is None:
            spec = find_spec(name)
            origin = spec.origin if spec is not None else None
        if origin is not None and origin.endswith(tuple(EXTENSION_SUFFIXES)):
            compiled += 1
    if compiled == len(COMPILED_MODULES) + len(NATIVE_MODULES):
        return "mypyc"
    return "python" if compiled == 0 else "mixed"
