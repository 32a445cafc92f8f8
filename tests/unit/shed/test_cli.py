"""``rempart shed`` commands: hostile sources live on a real HAProxy, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from rempart.shed.cli import shed
from rempart.shed.maps import read_hostile

from .conftest import RealHAProxy
from .test_haproxy import get

pytestmark = pytest.mark.timeout(60)


def write_config(path: Path, table: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps({"shed": table}))
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(shed, list(args))


@pytest.mark.haproxy
def test_hostile_add_list_del_live_and_in_the_map_file(
    haproxy: RealHAProxy, tmp_path: Path
) -> None:
    cfg = tmp_path / "rempart.toml"
    table = {
        "haproxy": {
            "bind": haproxy.settings.haproxy.bind,
            "runtime_socket": haproxy.settings.haproxy.runtime_socket,
            "map_dir": haproxy.settings.haproxy.map_dir,
        }
    }
    write_config(cfg, table)
    map_dir = Path(haproxy.settings.haproxy.map_dir)
    port = haproxy.front_port
    assert get(port, "/payments/p", source="127.0.9.9")[0] == 200

    added = invoke("hostile", "add", "127.0.9.9", "--config", str(cfg))
    assert added.exit_code == 0, added.output
    net = invoke("hostile", "add", "127.0.8.1/24", "--config", str(cfg))  # normalised network
    assert net.exit_code == 0, net.output
    assert get(port, "/payments/p", source="127.0.9.9")[0] == 403  # live, no reload
    assert get(port, "/payments/p", source="127.0.8.200")[0] == 403
    assert get(port, "/payments/p", source="127.0.7.1")[0] == 200
    assert sorted(read_hostile(map_dir)) == ["127.0.8.0/24", "127.0.9.9"]  # survives a restart
    listed = invoke("hostile", "list", "--config", str(cfg))
    assert listed.exit_code == 0 and sorted(listed.output.split()) == ["127.0.8.0/24", "127.0.9.9"]

    again = invoke("hostile", "add", "127.0.9.9", "--config", str(cfg))  # idempotent
    assert again.exit_code == 0 and read_hostile(map_dir).count("127.0.9.9") == 1
    removed = invoke("hostile", "del", "127.0.9.9", "--config", str(cfg))
    assert removed.exit_code == 0, removed.output
    assert get(port, "/payments/p", source="127.0.9.9")[0] == 200
    assert read_hostile(map_dir) == ["127.0.8.0/24"]
    assert invoke("hostile", "list", "--config", str(cfg)).output.split() == ["127.0.8.0/24"]


def test_hostile_with_unreachable_socket_changes_nothing(tmp_path: Path) -> None:
    map_dir = tmp_path / "maps"
    map_dir.mkdir()
    (map_dir / "hostile.map").write_text("10.0.0.1 1\n")
    cfg = write_config(
        tmp_path / "r.toml",
        {"haproxy": {"runtime_socket": str(tmp_path / "down.sock"), "map_dir": str(map_dir)}},
    )
    result = invoke("hostile", "add", "10.0.0.2", "--config", str(cfg))
    assert result.exit_code != 0
    assert "shed.haproxy.runtime_socket" in result.output and "down.sock" in result.output
    assert read_hostile(map_dir) == ["10.0.0.1"]  # the file keeps the last good state
    assert invoke("hostile", "list", "--config", str(cfg)).exit_code != 0


def test_hostile_rejects_what_is_not_an_address(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "r.toml", {})
    result = invoke("hostile", "add", "evil.example", "--config", str(cfg))
    assert result.exit_code == 2 and "not an IP address or CIDR network" in result.output


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ({"class": "vip", "path": "/x"}, "shed.routes[1].class"),  # unknown class
        ({"class": "critical", "path": "/pay*ments"}, "shed.routes[1].path"),  # invalid
        ({"class": "sheddable", "path": "/payments/*", "methods": ["POST"]}, None),  # nested: ok
        ({"class": "sheddable", "path": "/payments/*", "host": "x.org"}, None),  # nested: ok
        ({"class": "sheddable", "path": "/payments/*"}, "shed.routes[1].path"),  # identical
    ],
)
def test_haproxy_config_bad_input_names_the_key_and_writes_nothing(
    tmp_path: Path, route: dict[str, Any], key: str | None
) -> None:
    output = tmp_path / "haproxy.cfg"
    output.write_text("# last good configuration\n")
    cfg = write_config(
        tmp_path / "r.toml",
        {
            "haproxy": {"map_dir": str(tmp_path / "maps")},
            "services": [{"name": "web", "upstream": "127.0.0.1:8081"}],
            "routes": [{"name": "pay", "class": "critical_plus", "path": "/payments/*"}, route],
        },
    )
    result = invoke("haproxy-config", "--config", str(cfg), "-o", str(output))
    if key is None:
        assert result.exit_code == 0, result.output
        assert "backend be_web" in output.read_text()
        return
    assert result.exit_code == 1 and key in result.output, result.output
    assert output.read_text() == "# last good configuration\n"  # the last good config stays
    assert not (tmp_path / "maps").exists()


def test_status_with_unreachable_socket_says_haproxy_keeps_its_state(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "r.toml",
        {
            "haproxy": {"runtime_socket": str(tmp_path / "down.sock")},
            "services": [{"name": "web", "upstream": "127.0.0.1:8081"}],
        },
    )
    result = invoke("status", "--config", str(cfg))
    assert result.exit_code == 1
    assert "down.sock" in result.output and "keeps enforcing its last state" in result.output


def test_haproxy_config_as_in_the_readme_needs_no_config_and_stays_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 11: no --config needed; map files go under the data directory."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(shed, ["haproxy-config"])
    assert result.exit_code == 0, result.output
    maps = (tmp_path / "rempart-data" / "shed").resolve()
    assert f"{maps}/admission.map" in result.stdout
    assert sorted(p.name for p in maps.iterdir()) == [
        "admission.map",
        "blocklist.map",
        "hostile.map",
        "standing.map",
    ]
    assert "/var/lib" not in result.stdout
    out = tmp_path / "haproxy.cfg"
    elsewhere = CliRunner().invoke(
        shed, ["haproxy-config", "--data-dir", str(tmp_path / "d2"), "-o", str(out)]
    )
    assert elsewhere.exit_code == 0, elsewhere.output
    assert str(tmp_path / "d2" / "shed" / "hostile.map") in out.read_text()
