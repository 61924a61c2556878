"""Module 4, Redis HA: 3 Redis + 3 Sentinels, HAProxy sending clients to the master only."""

from keybuzz.modules.redis.module import RedisModule

__all__ = ["RedisModule"]
