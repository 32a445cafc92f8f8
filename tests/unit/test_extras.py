"""Optional extras fail loudly naming what to install; core modules are never optional."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rempart.cli import main
from rempart.config import from_mapping
from rempart.extras import MissingExtra, require
from rempart.state import open_store


def test_an_installed_module_is_returned() -> None:
    assert require("json", "none", "the test").dumps([1]) == "[1]"


def test_a_missing_extra_names_the_extra_to_install() -> None:
    with pytest.raises(MissingExtra, match=r"the feature needs .*pip install 'rempart\[sim\]'"):
        require("rempart_no_such_distribution", "sim", "the feature")


def test_a_broken_installed_module_is_not_mistaken_for_a_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rempart_broken_extra.py").write_text("import rempart_missing_inner_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as raised:
        require("rempart_broken_extra", "sim", "the feature")
    assert not isinstance(raised.value, MissingExtra)
    assert raised.value.name == "rempart_missing_inner_dependency"


def test_redis_backend_without_the_redis_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # makes `import redis` fail as if absent
    settings = from_mapping({"state": {"backend": "redis"}})
    with pytest.raises(MissingExtra, match=r"backend = \"redis\".*rempart\[redis\]"):
        open_store(settings, tmp_path)


def test_serve_reports_the_missing_extra_as_a_cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    config = tmp_path / "rempart.toml"
    config.write_text('[state]\nbackend = "redis"\n')
    result = CliRunner().invoke(
        main, ["serve", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 1
    assert "pip install 'rempart[redis]'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_every_package_command_group_is_registered() -> None:
    expected = {"leaks", "sim", "shed", "status", "report", "operator", "tail", "nginx-config"}
    assert expected <= set(main.commands)
