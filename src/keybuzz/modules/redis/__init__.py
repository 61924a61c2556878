"""Module 4, Redis HA: 3 Redis + 3 Sentinels, HAProxy sending clients to the master only."""

from keybuzz.modules.redis.module import MODULE, RedisModule

__all__ = ["MODULE", "RedisModule"]
