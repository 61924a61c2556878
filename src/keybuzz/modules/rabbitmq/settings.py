"""keybuzz.yaml `rabbitmq:` (resource limits) and `tuning.rabbitmq` (failure detection), with their defaults."""

from __future__ import annotations

from pydantic import Field

from keybuzz.site.config import Strict

_SIZE = r"^[1-9][0-9]*(MB|GB)$"


class RabbitmqSettings(Strict):
    """Alarms from settings, never from the host: a container (or a lab namespace) sees the whole
    machine's memory and disk. Above `memory_limit` the node blocks publishers (memory alarm);
    below `disk_free_limit` free on its data disk, too."""

    memory_limit: str = Field(default="1GB", pattern=_SIZE)
    disk_free_limit: str = Field(default="2GB", pattern=_SIZE)
    vhost: str = Field(default="keybuzz", pattern=r"^[A-Za-z0-9._-]+$")


class RabbitmqTuning(Strict):
    """How fast a silent peer is declared down. Erlang's default net_ticktime of 60 s kept a
    consumer blocked ~61 s after a power-off (measured here); 10 s declares a powered-off peer
    down after 7.5-12.5 s without false partitions on a busy machine."""

    net_ticktime_s: int = Field(default=10, ge=5, le=120)
    # The quorum queues' own failure detector (aten, RabbitMQ's default 5000 ms): a follower
    # starts an election after a few silent polls of the leader's node.
    failure_detector_poll_ms: int = Field(default=1000, ge=250, le=10000)
