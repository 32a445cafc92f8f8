"""A real redis-server for tests: a free loopback port, its own temporary directory, no
persistence, stopped and restarted at will (to test what nodes do while Redis is away)."""

from __future__ import annotations

import shutil
from pathlib import Path

from rempart.process import RedisProcess, free_port
from tests.conftest import need

__all__ = ["RedisServer", "free_port"]


class RedisServer(RedisProcess):
    """`RedisProcess`, skipped (or failed under REMPART_REQUIRE_REDIS=1) when Redis is missing."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        need("redis", binary is not None, "install the redis-server package")
        try:
            import redis  # noqa: F401
        except ImportError:
            need("redis", False, 'install the redis extra: pip install -e ".[redis]"')
        super().__init__(root, binary)

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()
