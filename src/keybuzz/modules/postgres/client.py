"""psycopg as the application role: the LB VIP and connection settings shared by deploy, checks
and drills. Credentials come from the site and go straight to libpq, never into a log line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from keybuzz.errors import OperationFailed
from keybuzz.modules.postgres import layout
from keybuzz.site import Site


def lb_vip(site: Site) -> str:
    lb = site.config.load_balancer_for(layout.WRITE_PORT)
    if lb is None:
        raise OperationFailed("no load balancer in keybuzz.yaml serves port 5432", module=layout.MODULE,
                              step="write path")
    return str(lb.vip)


def app_conninfo(site: Site, host: str, port: int, *, connect_timeout: int = 3) -> dict[str, Any]:
    creds = site.credentials[layout.MODULE]
    return {"host": host, "port": port, "dbname": creds["POSTGRES_APP_DATABASE"], "user": creds["POSTGRES_APP_USER"],
            "password": creds["POSTGRES_APP_PASSWORD"], "connect_timeout": connect_timeout,
            "application_name": "keybuzz"}


def query(site: Site, host: str, port: int, sql: str, params: Sequence[object] | None = None,
          **extra: Any) -> list[tuple[Any, ...]]:
    """SQL as the application role on a connection of its own; its rows ([] for a statement without).
    Several statements (DDL) only without params. prepare_threshold=None: no server-side prepared
    statements (PgBouncer transaction mode)."""
    with psycopg.connect(**app_conninfo(site, host, port), **extra, autocommit=True, prepare_threshold=None) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def connect_once(site: Site, host: str, port: int) -> bool:
    """Log in as the application role; returns pg_is_in_recovery()."""
    return bool(query(site, host, port, "SELECT pg_is_in_recovery()")[0][0])
