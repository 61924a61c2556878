"""keybuzz.yaml `mariadb:` (sizes, durability, the application database) and `tuning.galera`
(failure detection), with their defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keybuzz.site.config import Strict

_SIZE = r"^[1-9][0-9]*[KMG]$"


class MariadbSettings(Strict):
    """Sizes from settings, never from the host (a container or a lab namespace sees the whole
    machine's memory). `innodb_flush_log_at_trx_commit` 1 writes and syncs the redo log at every
    commit: Jepsen's 2026 analysis of Galera lost committed transactions on multi-node crashes with
    the seed's 2 (the log synced once a second). 2 is an explicit opt-in, linted."""

    database: str = Field(default="erpnext", pattern=r"^[A-Za-z0-9_]{1,64}$")
    innodb_buffer_pool_size: str = Field(default="512M", pattern=_SIZE)
    max_connections: int = Field(default=500, ge=10, le=100000)
    innodb_flush_log_at_trx_commit: Literal[1, 2] = 1


class GaleraTuning(Strict):
    """How fast a silent node leaves the group. Galera's defaults (suspect 5 s, inactive 15 s) keep
    writes waiting ~6 s after a power-off (measured); a lower suspect timeout shortens that but
    evicts nodes on a congested network."""

    suspect_timeout_s: int = Field(default=5, ge=2, le=60)
    inactive_timeout_s: int = Field(default=15, ge=5, le=120)
    gcache_size: str = Field(default="1G", pattern=_SIZE)  # how far behind a node may be and still get IST
