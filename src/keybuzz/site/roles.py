"""The roles a server may have in servers.tsv: one list for the parser and for every setting that names a role."""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["install", "haproxy", "db", "redis", "queue", "minio", "maria", "proxysql",
               "k3s-master", "k3s-worker", "monitor", "app"]
ROLES: tuple[str, ...] = get_args(Role)
