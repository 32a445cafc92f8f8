"""The server sits on top: no module of the package below it imports `rempart.server`.

Adapters and ops pages receive a narrow context built by the server (`adapters/context.py`,
`ops/context.py`); only the command line and the decision worker's entry, which run the
server, may import it. Read from the source with `ast`, so an import hidden under
`TYPE_CHECKING`, inside a function, relative, or spelled as `__import__("rempart.server")`
counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rempart

PACKAGE = Path(rempart.__file__).parent
ALLOWED = {"rempart.cli", "rempart.__main__", "rempart.server", "rempart.decision_worker"}
IMPORTERS = {"__import__", "import_module"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a file of `package` imports, absolute, `from X import Y` counted as X and
    X.Y."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0] if node.args else None
            if called in IMPORTERS and isinstance(first, ast.Constant):
                found.add(str(first.value))
    return found


def test_no_module_below_the_server_imports_it() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 100  # the whole package, not an empty glob
    offenders = []
    for path in modules:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        if name not in ALLOWED and "rempart.server" in imported_modules(path.read_text(), package):
            offenders.append(name)
    assert offenders == []


def test_the_import_reader_sees_every_spelling() -> None:
    """The check above would pass vacuously if the reader missed a form of import."""
    spellings = [
        "from rempart.server import Service",
        "import rempart.server",
        "from rempart import server",
        "from .. import server",
        "from ..server import Service",
        'mod = __import__("rempart.server", fromlist=["Service"])',
        'mod = importlib.import_module("rempart.server")',
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rempart.server import Service",
        "def later():\n    from rempart.server import run",
    ]
    for source in spellings:
        assert "rempart.server" in imported_modules(source, "rempart.adapters"), source
    clean = "from rempart.httpserver import Router\nimport rempart.model\nfrom . import fields\n"
    assert "rempart.server" not in imported_modules(clean, "rempart.adapters")
