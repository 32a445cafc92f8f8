"""The HTTP runner only ever targets loopback."""

from __future__ import annotations

import pytest

from rempart.sim.http_runner import NotLoopback, WforceClient, loopback_target


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8084", "http://192.168.1.2", "https://127.0.0.1:8084", "ftp://[::1]"]
)
def test_refuses_anything_but_plain_http_on_loopback(url: str) -> None:
    with pytest.raises(NotLoopback):
        loopback_target(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8084", "http://localhost:9", "http://[::1]:80"])
def test_accepts_loopback(url: str) -> None:
    _host, port = loopback_target(url)
    assert port in (8084, 9, 80)
    WforceClient(url, "secret").close()
