"""The [state] table: embedded SQLite by default, Redis on request, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.config import ConfigError, Settings, from_mapping
from rempart.state import open_store
from rempart.state.sqlite import SqliteStore


def test_no_config_means_the_embedded_sqlite_store(tmp_path: Path) -> None:
    settings = Settings.default()
    assert settings.state.backend == "sqlite"
    store = open_store(settings, tmp_path)
    try:
        assert isinstance(store, SqliteStore)
    finally:
        store.close()


def test_redis_settings_are_read() -> None:
    state = from_mapping(
        {
            "state": {
                "backend": "redis",
                "redis_url": "redis://10.0.0.5:6380/2",
                "key_prefix": "mail:",
                "node_id": "edge-1",
                "sync_interval": 0.25,
            }
        }
    ).state
    assert (state.backend, state.redis_url, state.key_prefix, state.node_id) == (
        "redis",
        "redis://10.0.0.5:6380/2",
        "mail:",
        "edge-1",
    )
    assert state.sync_interval == 0.25


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"backend": "memcached"}, "[state] backend"),
        ({"redis_url": "http://127.0.0.1:6379"}, "[state] redis_url"),
        ({"key_prefix": "a b"}, "[state] key_prefix"),
        ({"key_prefix": ""}, "[state] key_prefix"),
        ({"node_id": "node one"}, "[state] node_id"),
        ({"sync_interval": 0}, "[state] sync_interval"),
        ({"sync_interval": 30}, "[state] sync_interval"),
        ({"stream_maxlen": "big"}, "[state] stream_maxlen"),
        ({"buffer_records": 10}, "[state] buffer_records"),
        ({"redis": "on"}, "[state] unknown key 'redis'"),
    ],
)
def test_bad_values_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_mapping({"state": table})


def test_a_bad_url_is_not_echoed_with_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping({"state": {"redis_url": "https://admin:s3cret@10.0.0.5/"}})
    assert "s3cret" not in str(info.value)
