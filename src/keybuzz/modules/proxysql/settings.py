"""keybuzz.yaml `proxysql:`: which proxy runs on the proxysql servers, and ProxySQL's sizes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keybuzz.site.config import Strict


class ProxysqlSettings(Strict):
    """`proxysql` is the seed's ProxySQL 2.6 (production). `haproxy` runs HAProxy with the Galera
    health agents instead: the lab's stand-in (no ProxySQL package is reachable here), the same path
    client -> lb-mariadb:3306 -> proxysql servers -> the one Galera writer, without ProxySQL's query
    rules and connection multiplexing."""

    engine: Literal["proxysql", "haproxy"] = "proxysql"
    threads: int = Field(default=4, ge=1, le=64)
    max_connections: int = Field(default=2048, ge=10, le=100000)
