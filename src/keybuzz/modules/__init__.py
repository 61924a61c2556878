"""The module registry, numbered as in the seed (2 base_os ... 9 k3s)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keybuzz.errors import InputError
from keybuzz.modules.base import Module, NotLanded, PendingModule
from keybuzz.modules.postgres import MODULE as POSTGRES
from keybuzz.modules.redis import RedisModule

if TYPE_CHECKING:
    from keybuzz.site import Site

MODULES: list[Module] = [
    PendingModule(2, "base_os", "Base OS & security", ("install", "haproxy", "db", "redis", "queue", "minio",
                                                         "maria", "proxysql", "k3s-master", "k3s-worker",
                                                         "monitor", "app")),
    POSTGRES,
    RedisModule(),
    PendingModule(5, "rabbitmq", "RabbitMQ HA (quorum queues)", ("queue", "haproxy")),
    PendingModule(6, "minio", "MinIO S3 (distributed)", ("minio",)),
    PendingModule(7, "mariadb", "MariaDB Galera HA", ("maria",)),
    PendingModule(8, "proxysql", "ProxySQL in front of Galera", ("proxysql",)),
    PendingModule(9, "k3s", "K3s HA core, ingress, monitoring", ("k3s-master", "k3s-worker")),
]

# A role whose servers only make sense with another role present (the service's way in).
ROLE_NEEDS: dict[str, tuple[str, str]] = {
    "db": ("haproxy", "PostgreSQL is reached through HAProxy on the haproxy servers"),
    "redis": ("haproxy", "Redis is reached through HAProxy on the haproxy servers"),
    "queue": ("haproxy", "RabbitMQ is reached through HAProxy on the haproxy servers"),
    "proxysql": ("maria", "ProxySQL needs MariaDB servers behind it"),
    "k3s-worker": ("k3s-master", "workers join a control plane"),
}


def module_by_name(name: str) -> Module:
    for module in MODULES:
        if module.name == name or str(module.number) == name:
            return module
    known = ", ".join(f"{m.number} {m.name}" for m in MODULES)
    raise KeyError(f"unknown module {name!r}; known: {known}")


def requirement_errors(site: Site, servers_file: str) -> list[InputError]:
    """Cross-file checks: companion roles, load balancer targets, module-specific needs."""
    errors: list[InputError] = []
    for role, (needed, why) in ROLE_NEEDS.items():
        users = site.with_role(role)
        if users and not site.with_role(needed):
            errors.append(InputError(servers_file, users[0].line,
                                     f"servers with role {role} but none with role {needed}",
                                     f"{why}; add {needed} servers"))
    for module in MODULES:
        errors.extend(InputError(servers_file, 0, message) for message in module.requirements(site))
    return errors


__all__ = ["MODULES", "Module", "NotLanded", "module_by_name", "requirement_errors"]
