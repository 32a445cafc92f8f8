"""State stores: the Store interface, the embedded SQLite store and the Redis store.

`open_store` picks the store `[state] backend` names; the Redis modules (and the `redis`
package, the `rempart[redis]` extra) are imported only when it is "redis"; without the extra
that is a MissingExtra error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rempart.extras import MissingExtra, require

if TYPE_CHECKING:
    from rempart.config import Settings
    from rempart.engine.engine import Engine
    from rempart.state.replication import Replicator
    from rempart.state.store import Store


def open_store(settings: Settings, data_dir: str | Path) -> Store:
    """The configured store. With Redis, a local SQLite store mirrors every write (see
    `rempart.state.redis`)."""
    from rempart.state.sqlite import SqliteStore

    local = SqliteStore(data_dir)
    st = settings.state
    if st.backend != "redis":
        return local
    try:
        require("redis", "redis", '[state] backend = "redis"')
    except MissingExtra:
        local.close()
        raise
    from rempart.state.redis import RedisStore

    return RedisStore(
        st.redis_url,
        prefix=st.key_prefix,
        node_id=st.node_id,
        local=local,
        familiarity_ttl=settings.familiarity.ttl_days * 86400.0,
        sync_interval=st.sync_interval,
        stream_maxlen=st.stream_maxlen,
        buffer_records=st.buffer_records,
    )


def open_replication(settings: Settings, engine: Engine, store: Store) -> Replicator | None:
    """With the Redis store: the node's `Replicator`, listening to `engine` (its metrics come
    from `ReplicationCollector(replicator)`); None otherwise. `attach(loop)` starts it."""
    if settings.state.backend != "redis":
        return None
    from rempart.state.redis import RedisStore
    from rempart.state.replication import Replicator

    if not isinstance(store, RedisStore):
        raise TypeError("replication over Redis needs the RedisStore that open_store gives")
    e = settings.engine
    return Replicator(engine, store, backfill_seconds=e.bucket_seconds * e.buckets)
