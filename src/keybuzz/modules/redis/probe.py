"""The drill's writer: RPUSH of each id to one list through the load balancer, no retries.

With `wait_replicas`, each RPUSH is followed by WAIT on the same connection and counts as
acknowledged only when that many replicas confirmed it: what an application does for the keys
it cannot lose (docs/redis.md)."""

from __future__ import annotations

import redis

from keybuzz.contract import WriterProbe
from keybuzz.modules.redis.client import sync_client


class NotReplicated(Exception):
    """WAIT answered fewer replicas than asked within its timeout: the write is not acknowledged."""


class RedisWriterProbe(WriterProbe):
    """Each acknowledged RPUSH is an id the new master must still hold after the failover.
    redis-py's connection pool reconnects lazily on the next call after a failure."""

    def __init__(self, host: str, port: int, password: str, key: str, timeout: float = 0.5, *,
                 wait_replicas: int = 0, wait_timeout_ms: int = 300):
        self.key = key
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        self._client = sync_client(host, port, password, timeout + wait_timeout_ms / 1000 if wait_replicas
                                   else timeout)
        self._read = (host, port, password)

    def write(self, write_id: int) -> None:
        if not self.wait_replicas:
            self._client.rpush(self.key, write_id)
            return
        # One connection for both, so WAIT waits for this RPUSH (a pipeline keeps them together).
        pipe = self._client.pipeline(transaction=False)
        pipe.rpush(self.key, write_id)
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        _, confirmed = pipe.execute()
        if int(confirmed) < self.wait_replicas:
            raise NotReplicated(f"WAIT: {confirmed} of {self.wait_replicas} replica(s) confirmed within "
                                f"{self.wait_timeout_ms} ms")

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
        if isinstance(exc, NotReplicated):
            return "not confirmed by a replica (WAIT)"
        if isinstance(exc, redis.exceptions.ResponseError) and str(exc).split(" ", 1)[0].isupper():
            return str(exc).split(" ", 1)[0]  # NOREPLICAS, LOADING, MASTERDOWN ...
        return super().classify(exc)

    def close(self) -> None:
        self._client.close()
