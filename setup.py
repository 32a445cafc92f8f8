"""Build hook: compiles Rempart's decision hot path with mypyc when the machine can.

pyproject.toml holds the metadata; this file only adds the extension modules. The modules are
`rempart.COMPILED_MODULES` (read from src/rempart/__init__.py without importing the package),
compiled by mypyc, and `rempart.NATIVE_MODULES`, C extensions written by hand.
They are compiled when a C compiler and the Python headers are available and
REMPART_PURE_PYTHON is not set at build time; otherwise, or when the compilation fails, the
package installs as pure Python (the same sources) and says so. REMPART_REQUIRE_COMPILED=1
turns that fallback into a build failure (CI).
"""

from __future__ import annotations

import ast
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _say(message: str) -> None:
    print(f"rempart build: {message}", file=sys.stderr)


def _modules(name: str) -> list[str]:
    tree = ast.parse((ROOT / "src" / "rempart" / "__init__.py").read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"src/rempart/__init__.py defines no {name}")


def compiled_modules() -> list[str]:
    return _modules("COMPILED_MODULES")


def native_modules() -> list[str]:
    """Hand-written C extensions (`NATIVE_MODULES`), each from the `.c` beside its module."""
    return _modules("NATIVE_MODULES")


def can_compile() -> bool:
    """A C compiler that builds against Python.h (the headers come with python3-dev)."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CCompilerError, DistutilsError
    from setuptools._distutils.sysconfig import customize_compiler, get_python_inc

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("#include <Python.h>\nint probe(void) { return 0; }\n")
        try:
            compiler.compile([str(source)], output_dir=tmp, include_dirs=[get_python_inc()])
        except (CCompilerError, DistutilsError, OSError) as exc:
            _say(f"no working C compiler with Python headers ({exc})")
            return False
    return True


def ext_modules() -> list[Any]:
    if _flag("REMPART_PURE_PYTHON"):
        _say("REMPART_PURE_PYTHON is set: installing the pure-Python engine")
        return []
    if not can_compile():
        if _flag("REMPART_REQUIRE_COMPILED"):
            raise SystemExit("REMPART_REQUIRE_COMPILED=1 but nothing can compile here")
        _say("installing the pure-Python engine (slower; same decisions)")
        return []
    from mypyc.build import mypycify

    paths = ["src/" + name.replace(".", "/") + ".py" for name in compiled_modules()]
    _say(f"compiling {len(paths)} modules with mypyc")
    # The build environment holds only the build requirements: the compiled modules import
    # nothing else from outside the standard library, and the rest of the package (which does)
    # is read for its types only, its errors silenced (CI's mypy run checks it, fully installed).
    native = [
        Extension(name, [f"src/{name.replace('.', '/')}.c"], extra_compile_args=["-O2"])
        for name in native_modules()
    ]
    return native + list(
        mypycify(
            [
                "--config-file",
                "pyproject.toml",
                "--no-warn-unused-configs",
                "--ignore-missing-imports",
                "--follow-imports=silent",
                *paths,
            ],
            opt_level="3",
            group_name="rempart_core",
        )
    )


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python when the C compilation itself fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if _flag("REMPART_REQUIRE_COMPILED"):
                raise
            # All or nothing: a compiled module expects its compiled neighbours.
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            _say(f"compiling failed ({exc}); installing the pure-Python engine")


os.chdir(ROOT)  # mypycify takes paths relative to the project
setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
