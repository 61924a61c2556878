"""What a module declares about itself, beyond render: ports and who may reach them, metrics
endpoints, quorum and companion-role needs. The registry builds the site-wide tables from these
(the port table and its collisions, the firewall of the base OS module, the scrape targets)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from keybuzz.site import Site
from keybuzz.site.schema import Quorum
from keybuzz.site.servers import Server

# A source of traffic that is not a servers.tsv role: the managed load balancers (their VIPs, and
# the addresses they check and forward from), as listed in keybuzz.yaml `load_balancers`.
LOAD_BALANCER = "load-balancer"

__all__ = ["LOAD_BALANCER", "AlertRule", "DashboardPanel", "Exporter", "MetricsEndpoint", "Port", "Quorum", "RoleNeed",
           "VolumePath"]


@dataclass(frozen=True)
class Port:
    """A port the servers of `role` listen on for this module, and the roles that may reach it."""

    number: int
    role: str
    service: str  # what listens, for tables and error messages ("Patroni REST API")
    allow_from: tuple[str, ...] = ()  # servers.tsv roles, or LOAD_BALANCER
    protocol: Literal["tcp", "udp"] = "tcp"
    loopback: bool = False  # bound to 127.0.0.1 only: never opened, still unique on its host


@dataclass(frozen=True)
class Exporter:
    """An exporter container the monitoring module runs on each server of the endpoint's role, next
    to the service it reads (which has no metrics endpoint of its own). Its login is a least-privilege
    user the owning module creates; `env` renders that login as the 0600 environment of the container."""

    image: str  # versions.yaml key, declared by the monitoring module's images
    entrypoint: str
    args: tuple[str, ...] = ()  # "{ip}" is replaced by the server's private address
    env: Callable[[Site, Server], str] | None = None


@dataclass(frozen=True)
class MetricsEndpoint:
    """A Prometheus endpoint on the servers of `role` (scraped from the monitor servers). With an
    `exporter`, the monitoring module runs what serves it and opens its port to the monitor servers;
    without one, the module's own service serves it (Patroni, RabbitMQ's plugin, HAProxy)."""

    job: str
    role: str
    port: int
    path: str = "/metrics"
    exporter: Exporter | None = None


@dataclass(frozen=True)
class RoleNeed:
    """Servers of `role` only make sense with servers of `needs` (the service's way in)."""

    role: str
    needs: str
    why: str


@dataclass(frozen=True)
class VolumePath:
    """A data folder of the servers of `role` that a site may put on its own block device
    (keybuzz.yaml `volumes`, `use: MODULE.NAME`); without one it stays a folder of the root disk.
    `path` is a data DirSpec of the module's render: converge gives the mounted volume its owner."""

    name: str  # "data", "wal"
    role: str
    path: str
    what: str  # for tables and messages ("PGDATA")


@dataclass(frozen=True)
class AlertRule:
    """A Prometheus alerting rule a module declares for its own failure modes. `wait` picks its `for:`
    from keybuzz.yaml `monitoring`: "down" (a target, member or leader missing, two primaries:
    down_for_s) or "slow" (lag, disk: lag_for_s)."""

    name: str
    expr: str
    summary: str  # one line with {{ $labels.x }} templates: what is wrong, where
    action: str  # what the on-call engineer does first
    wait: Literal["down", "slow"] = "down"
    severity: Literal["critical", "warning"] = "critical"


@dataclass(frozen=True)
class DashboardPanel:
    """One graph of the module's Grafana dashboard: a PromQL query over its metrics."""

    title: str
    expr: str
    legend: str = "{{hostname}}"
    unit: str = "short"  # Grafana's unit id: short, bytes, s, percent, ops
