"""keybuzz.yaml `tuning.sentinel`: the module's settings, with their defaults."""

from __future__ import annotations

from pydantic import Field

from keybuzz.site.config import Strict


class SentinelTuning(Strict):
    """Sentinel timings; down-after 1000 ms measured a ~4 s write gap on power-off.

    min-replicas-max-lag bounds what a master cut from its replicas acknowledges to clients that do
    not go through HAProxy (whose gate takes it out within about a second): replicas confirm every
    second, so 2 s tolerates one late confirmation and stops such a master after 2-3 s."""

    down_after_ms: int = Field(default=1000, ge=100)
    failover_timeout_ms: int = Field(default=10000, ge=1000)
    min_replicas_to_write: int = Field(default=1, ge=0)
    min_replicas_max_lag_s: int = Field(default=2, ge=1)
