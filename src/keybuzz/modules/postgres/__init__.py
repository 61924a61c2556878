"""Module 3: PostgreSQL HA with Patroni (RAFT or etcd), HAProxy and PgBouncer."""

from keybuzz.modules.postgres.module import MODULE, PostgresModule

__all__ = ["MODULE", "PostgresModule"]
