"""The seed's topology (49 servers, the seed's IPs) and its core settings as an example site.

The modules add their own example settings and pinned images (keybuzz.registry.example_site)."""

from __future__ import annotations

from typing import Any

from keybuzz.site.writer import ServerRow


def _numbered(prefix: str, count: int, first_ip: int, roles: tuple[str, ...]) -> list[ServerRow]:
    return [ServerRow(f"{prefix}-{i + 1:02d}", f"10.0.0.{first_ip + i}", roles, fqdn=f"{prefix}-{i + 1:02d}.keybuzz.io")
            for i in range(count)]


def seed_servers() -> list[ServerRow]:
    rows = [
        ServerRow("install-01", "10.0.0.250", ("install",), public_ip="91.98.128.153", fqdn="install-01.keybuzz.io"),
        ServerRow("haproxy-01", "10.0.0.11", ("haproxy",), fqdn="haproxy-01.keybuzz.io"),
        ServerRow("haproxy-02", "10.0.0.12", ("haproxy",), fqdn="haproxy-02.keybuzz.io"),
        *_numbered("k3s-master", 3, 100, ("k3s-master",)),
        *_numbered("k3s-worker", 5, 110, ("k3s-worker",)),
        ServerRow("db-master-01", "10.0.0.120", ("db",), fqdn="db-master-01.keybuzz.io"),
        ServerRow("db-slave-01", "10.0.0.121", ("db",), fqdn="db-slave-01.keybuzz.io"),
        ServerRow("db-slave-02", "10.0.0.122", ("db",), fqdn="db-slave-02.keybuzz.io"),
        *_numbered("redis", 3, 123, ("redis",)),
        *_numbered("queue", 3, 126, ("queue",)),
        ServerRow("minio-02", "10.0.0.131", ("minio",), fqdn="minio-02.keybuzz.io"),
        ServerRow("minio-03", "10.0.0.132", ("minio",), fqdn="minio-03.keybuzz.io"),
        ServerRow("minio-01", "10.0.0.134", ("minio",), fqdn="minio-01.keybuzz.io"),
        *_numbered("maria", 3, 170, ("maria",)),
        ServerRow("proxysql-01", "10.0.0.173", ("proxysql",), fqdn="proxysql-01.keybuzz.io"),
        ServerRow("proxysql-02", "10.0.0.174", ("proxysql",), fqdn="proxysql-02.keybuzz.io"),
        *_numbered("monitor", 2, 180, ("monitor",)),
    ]
    # The seed counts 49 servers but names only the ones above; the rest are application
    # servers that only get the base OS module.
    rows += _numbered("app", 49 - len(rows), 200, ("app",))
    return rows


def seed_config() -> dict[str, Any]:
    return {
        "network": {"cidr": "10.0.0.0/16"},
        "domain": "keybuzz.io",
        "dns_servers": ["1.1.1.1", "8.8.8.8"],
        "container_cli": "docker",
        "load_balancers": [
            {"name": "lb-internal", "vip": "10.0.0.10", "target_role": "haproxy",
             "ports": [5432, 5433, 6432, 6379, 5672, 9000]},
            {"name": "lb-mariadb", "vip": "10.0.0.20", "target_role": "proxysql", "ports": [3306]},
        ],
        "paths": {"data_root": "/opt/keybuzz", "config_root": "/opt/keybuzz"},
    }


SEED_COMMENT = """keybuzz inventory: one server per line, tab-separated.
Columns: hostname, private_ip, public_ip (may be empty), roles (comma-separated), fqdn (may be empty).
Roles: install, haproxy, db, redis, queue, minio, maria, proxysql, k3s-master, k3s-worker, monitor, app.
Never put a secret here: secrets live in credentials/*.env."""
