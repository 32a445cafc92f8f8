"""Configuration: documented defaults match the code, bad keys are named, `config show` is TOML."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rempart.config import ConfigError, Settings, defaults, from_mapping, load_settings
from rempart.engine.campaign import CampaignSettings


def test_documented_defaults_match_the_dataclasses() -> None:
    from rempart.breach.settings import LeakSettings
    from rempart.ops.settings import OpsSettings

    d = defaults()
    for table, made in (
        ("campaign", CampaignSettings()),
        ("leaks", LeakSettings()),
        ("ops", OpsSettings()),
    ):
        for key, value in d[table].items():
            assert getattr(made, key) == value, (table, key)
    s = Settings.default()
    assert (s.server.host, s.server.port, s.server.data_dir) == (
        "127.0.0.1",
        8084,
        "./rempart-data",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nonsense": {}}, "unknown section"),
        ({"server": {"prot": 1}}, "unknown key 'prot'"),
        ({"server": {"port": "80"}}, r"\[server\] port: expected int"),
        ({"engine": {"buckets": 0}}, ">= 1"),
        ({"wforce": {"step_up_status": 1}}, "must be negative"),
        ({"policy": {"rules": {"a": 1}}}, "array of tables"),
        ({"logins": {"domain_aliases": {"a": 1}}}, "must be strings"),
    ],
)
def test_bad_settings_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)


def test_bad_toml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_settings(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "missing.toml")


def test_config_show_prints_every_default_as_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\nport = 9000\n[logins.domain_aliases]\n"Mail.Example.org" = "example.org"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "rempart", "config", "show", "--config", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shown = tomllib.loads(out)
    assert shown["server"]["port"] == 9000
    assert shown["engine"]["buckets"] == 12
    assert shown["campaign"]["strict_score"] == 12.0
    assert shown["logins"]["domain_aliases"] == {"Mail.Example.org": "example.org"}
    bad = tmp_path / "bad.toml"
    bad.write_text("[campaign]\nguarded_score = 50\n")
    check = subprocess.run(
        [sys.executable, "-m", "rempart", "config", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1 and "guarded < strict" in check.stderr
