"""The drill's writer: RPUSH of each id to one list through the load balancer, no retries."""

from __future__ import annotations

import redis

from keybuzz.contract import WriterProbe
from keybuzz.modules.redis.client import sync_client


class RedisWriterProbe(WriterProbe):
    """Each acknowledged RPUSH is an id the new master must still hold after the failover.
    redis-py's connection pool reconnects lazily on the next call after a failure."""

    def __init__(self, host: str, port: int, password: str, key: str, timeout: float = 0.5):
        self.key = key
        self._client = sync_client(host, port, password, timeout)
        self._read = (host, port, password)

    def write(self, write_id: int) -> None:
        self._client.rpush(self.key, write_id)

    def read_ids(self) -> set[int]:
        host, port, password = self._read
        client = sync_client(host, port, password, timeout=5.0)
        try:
            ids = {int(v) for v in client.lrange(self.key, 0, -1)}
            client.expire(self.key, 3600)  # drill keys do not stay in a production Redis
            return ids
        finally:
            client.close()

    def classify(self, exc: BaseException) -> str:
        if isinstance(exc, redis.exceptions.ReadOnlyError):
            return "READONLY"
        if isinstance(exc, redis.exceptions.ResponseError) and str(exc).split(" ", 1)[0].isupper():
            return str(exc).split(" ", 1)[0]  # NOREPLICAS, LOADING, MASTERDOWN ...
        return super().classify(exc)

    def close(self) -> None:
        self._client.close()
