"""``engine.stores.redis_store.RedisStore``: the name ``create_store`` and the tests import."""

from engine.stores.redis.store import RedisStore

__all__ = ["RedisStore"]
