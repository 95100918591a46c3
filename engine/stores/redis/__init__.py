"""The Redis store: RediSearch vector indexes on Redis Stack or Redis 8's Query Engine."""

from engine.stores.redis.store import RedisStore

__all__ = ["RedisStore"]
