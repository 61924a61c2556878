"""Short-lived redis-py clients with their own timeouts and no retries.

redis-py retries 3 times by default: failures would show as seconds of latency instead of
errors. Every client here fails fast so checks, gates and drills see what really happens.
"""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from keybuzz.modules.redis import layout


def sync_client(host: str, port: int, password: str, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis(host=host, port=port, password=password, socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), decode_responses=True)


def async_client(host: str, port: int, password: str | None, timeout: float = 1.0) -> aioredis.Redis:
    return aioredis.Redis(host=host, port=port, password=password, socket_timeout=timeout,
                          socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), decode_responses=True)


async def call(host: str, port: int, password: str | None, *command: str, timeout: float = 1.0) -> object:
    """One command on a fresh connection; raises redis errors as they come."""
    client = async_client(host, port, password, timeout)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def info(host: str, password: str, section: str = "replication") -> dict[str, object]:
    client = async_client(host, layout.REDIS_PORT, password)
    try:
        return await client.info(section)
    finally:
        await client.aclose()


async def sentinel_master(sentinel_ip: str, sentinel_password: str) -> dict[str, object]:
    """SENTINEL MASTER as a dict (ip, flags, num-slaves, num-other-sentinels ...)."""
    reply = await call(sentinel_ip, layout.SENTINEL_PORT, sentinel_password, "SENTINEL", "MASTER", layout.MASTER_NAME)
    if isinstance(reply, dict):
        return reply
    items = list(reply) if isinstance(reply, list | tuple) else []
    return dict(zip(items[::2], items[1::2], strict=False))


async def sentinel_views(ips: list[str], sentinel_password: str) -> dict[str, str | None]:
    """Each Sentinel's answer to get-master-addr-by-name (None when it does not answer)."""

    async def one(ip: str) -> str | None:
        try:
            reply = await call(ip, layout.SENTINEL_PORT, sentinel_password,
                               "SENTINEL", "GET-MASTER-ADDR-BY-NAME", layout.MASTER_NAME)
        except (redis.RedisError, OSError):
            return None
        return str(reply[0]) if isinstance(reply, list | tuple) and reply else None

    answers = await asyncio.gather(*(one(ip) for ip in ips))
    return dict(zip(ips, answers, strict=True))


def majority(views: dict[str, str | None]) -> str | None:
    """The master named by a majority of all Sentinels (answering or not), else None."""
    counts: dict[str, int] = {}
    for answer in views.values():
        if answer:
            counts[answer] = counts.get(answer, 0) + 1
    best = max(counts.items(), key=lambda item: item[1], default=(None, 0))
    return best[0] if best[1] > len(views) // 2 else None
