"""The section registry: every table parsed once by its package's declaration, one error type
naming file/table/key, unknown tables and keys refused, defaults declared once, and `serve`
refusing exactly what `config check` refuses."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import rempart.config as config
from rempart.adapters.settings import NginxSettings, TailSettings
from rempart.breach.settings import DovecotHash, LeakSettings
from rempart.config import ConfigError, Settings, from_mapping, load_settings, sections
from rempart.ops.settings import ConsoleSettings, StatusSettings
from rempart.ops.webhooks import WebhookSettings
from rempart.shed import config as shed_config
from rempart.shed.config import ShedSettings, parse_shed


def test_every_package_section_is_registered_and_parsed_once() -> None:
    names = {s.name for s in sections()}
    assert {
        "server", "auth", "logins", "engine", "familiarity", "wforce", "asn", "journal",
        "policy", "campaign", "state", "nginx", "tail", "leaks", "dovecot", "ops", "status",
        "campaign.webhooks", "shed",
    } <= names  # fmt: skip
    s = Settings.default()
    for kind in (NginxSettings, TailSettings, LeakSettings, DovecotHash, ConsoleSettings,
                 StatusSettings, WebhookSettings, ShedSettings):  # fmt: skip
        assert isinstance(s.section(kind), kind)
    assert not hasattr(s, "raw")


@pytest.mark.parametrize("name", sorted({s.name for s in sections()} - {"campaign.webhooks"}))
def test_an_unknown_key_is_refused_in_every_table(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(_nested(name, {"no_such_key": 1}))
    assert err.value.key in (name, f"{name}.no_such_key")
    assert "no_such_key" in str(err.value)


def test_unknown_tables_and_nested_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown section \[sim\]"):
        from_mapping({"sim": {}})
    with pytest.raises(ConfigError, match="unknown section"):
        from_mapping({"campaign.webhooks": []})  # only reachable nested, as in TOML
    with pytest.raises(ConfigError) as err:
        from_mapping({"campaign": {"webhooks": [{"url": "https://x.org/", "colour": "red"}]}})
    assert err.value.key == "campaign.webhooks[0]" and "'colour'" in str(err.value)
    with pytest.raises(ConfigError, match=r"\[server\] must be a table"):
        from_mapping({"server": 5})


def _nested(name: str, table: dict[str, object]) -> dict[str, object]:
    """The document holding `table` as table `name` ("shed.blocklist" inside [shed])."""
    parent, dot, child = name.rpartition(".")
    return {parent: {child: table}} if dot else {name: table}


def _wrong(value: object) -> object:
    """A TOML value of another type than `value`."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "12"
    if isinstance(value, str):
        return 12
    if isinstance(value, list | tuple):
        return 12
    if isinstance(value, dict):
        return {"name": 12}
    return 12


def _field_cases() -> list[tuple[str, str, object]]:
    cases = []
    for sec in sections():
        if sec.name in ("campaign.webhooks", "shed"):
            continue
        for f in dataclasses.fields(sec.kind):
            default = f.default_factory() if callable(f.default_factory) else f.default
            key = f.metadata.get("key") or f.name
            value = default.value if hasattr(default, "value") else default
            cases.append((sec.name, key, _wrong(value)))
    return cases


@pytest.mark.parametrize(("table", "key", "value"), _field_cases())
def test_a_wrong_type_is_one_config_error_naming_the_key(
    table: str, key: str, value: object
) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(_nested(table, {key: value}))
    assert err.value.key == f"{table}.{key}", str(err.value)
    # A nested table's key is named by its dotted path, as in "shed.routes[2].path: ...".
    named = f"{table}.{key}: " if "." in table else f"[{table}] {key}: "
    assert str(err.value).startswith(named)


def test_the_errors_of_every_package_are_the_one_type() -> None:
    for data in (
        {"shed": {"limiter": {"min": 10, "max": 5}}},
        {"shed": {"routes": [{"path": "/x"}]}},
        {"leaks": {"min_strength": 9}},
        {"dovecot": {"hash_truncate_bits": 300}},
        {"ops": {"cookie_secure": "maybe"}},
        {"tail": {"files": [{"path": "/x"}]}},
        {"nginx": {"protocol": "gopher"}},
        {"campaign": {"webhooks": [{"url": "ftp://x"}]}},
        {"policy": {"rules": [{"name": "x"}], "include_defaults": 1}},
    ):
        with pytest.raises(ConfigError):
            from_mapping(data)


def test_a_file_error_names_the_file_table_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[leaks]\nchunk_lines = 10\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert (err.value.file, err.value.key) == (str(path), "leaks.chunk_lines")
    assert str(err.value) == f"{path}: [leaks] chunk_lines: must be >= 1000, got 10"


def test_the_reference_is_the_defaults_declared_once() -> None:
    text = config.reference()
    document = tomllib.loads(text)
    assert document == config.defaults()
    # Read back, the reference gives exactly the default settings, section by section.
    again, default = from_mapping(document), Settings.default()
    for sec in sections():
        assert again.section(sec.kind) == default.section(sec.kind), sec.name
    # Every documented knob is in it.
    for sec in sections():
        if sec.reference is None:
            for f in dataclasses.fields(sec.kind):
                assert (f.metadata.get("key") or f.name) in document[sec.name], (sec.name, f.name)
    # The documented [shed] example carries the code's defaults for every key it shows.
    shed_doc = (shed_config.__doc__ or "").split("::", 1)[1].split("Errors raise", 1)[0]
    example, default_shed = parse_shed(tomllib.loads(shed_doc)["shed"]), ShedSettings()
    for name in ("default_class", "retry_after", "interval", "limiter", "client_rate", "haproxy"):
        assert getattr(example, name) == getattr(default_shed, name), name
    assert f"maxconn = {default_shed.haproxy.maxconn}" in text


def test_config_module_imports_no_other_rempart_module() -> None:
    tree = ast.parse(Path(config.__file__).read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [m for m in imported if m and m.startswith("rempart")], imported


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REMPART_API_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "rempart", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[[policy.rules]]\nname = "x"\nwhen = "nonsense(ip) > 1"\naction = "deny"\n', "nonsense"),
        ('[auth]\napi_password_file = "/nonexistent/pw"\n', "[auth] api_password_file"),
        ('[asn]\ndatabase = "/nonexistent/asn.tsv"\n', "[asn] database"),
        ("[nginx]\nstep_up = 3\n", "[nginx] step_up"),
        ("[server]\ndecision_workers = 2\n", "[server] decision_workers"),
    ],
)
def test_serve_refuses_exactly_what_config_check_refuses(
    tmp_path: Path, body: str, fragment: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(body)
    data_dir = tmp_path / "data"
    check = _run("config", "check", "--config", str(path))
    serve = _run("serve", "--config", str(path), "--data-dir", str(data_dir), "--port", "0")
    assert check.returncode == serve.returncode == 1, (check.stderr, serve.stderr)
    assert fragment in check.stderr and str(path) in check.stderr
    assert serve.stderr.strip().splitlines()[-1] == check.stderr.strip().splitlines()[-1]
    assert not data_dir.exists()  # refused before touching the data directory
