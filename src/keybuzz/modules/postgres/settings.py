"""keybuzz.yaml `tuning.patroni` and `tuning.postgres`: the module's settings, with their defaults."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keybuzz.site.config import Strict


class PatroniTuning(Strict):
    """Patroni timings. Defaults are the fastest valid for Patroni 4 (measured ~21 s outage)."""

    dcs: Literal["raft", "etcd"] = "raft"
    ttl: int = 20
    loop_wait: int = 2
    retry_timeout: int = 4
    maximum_lag_on_failover: int = 1048576
    # One synchronous standby of two, not strict: a commit is acknowledged once a replica has it, so a
    # leader cut from its replicas acknowledges nothing that a failover could lose; with no replica
    # left at all, Patroni goes on asynchronously (strict mode would stop writes). docs/postgres.md.
    synchronous_mode: bool = True


_PG_SIZE = r"^[1-9][0-9]*(kB|MB|GB|TB)$"
_LIBRARY = r"^[a-z][a-z0-9_]*$"  # a library name, nothing a comma-separated GUC could be confused by

PG_STAT_STATEMENTS = "pg_stat_statements"
# What production preloads: query statistics. pgvector needs no preload (CREATE EXTENSION vector).
PRODUCTION_PRELOAD: tuple[str, ...] = (PG_STAT_STATEMENTS,)


class PostgresTuning(Strict):
    """PostgreSQL sizes, stored in Patroni's DCS; from settings, never from the host (a container
    or a lab namespace sees the whole machine's memory). Defaults are the seed's values, except the
    preload list: the seed also preloads `vector`, which pgvector does not need."""

    max_connections: int = Field(default=200, ge=10, le=10000)
    shared_buffers: str = Field(default="256MB", pattern=_PG_SIZE)
    effective_cache_size: str = Field(default="1GB", pattern=_PG_SIZE)
    work_mem: str = Field(default="4MB", pattern=_PG_SIZE)
    maintenance_work_mem: str = Field(default="64MB", pattern=_PG_SIZE)
    wal_keep_size: str = Field(default="1GB", pattern=_PG_SIZE)
    min_wal_size: str = Field(default="1GB", pattern=_PG_SIZE)
    max_wal_size: str = Field(default="4GB", pattern=_PG_SIZE)
    # shared_preload_libraries; a PostgreSQL build without one of them does not start. The lab's
    # build has no pg_stat_statements: its site sets this to [] and validate says it differs.
    preload_libraries: tuple[Annotated[str, Field(pattern=_LIBRARY)], ...] = PRODUCTION_PRELOAD
