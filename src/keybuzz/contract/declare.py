"""What a module declares about itself, beyond render: ports and who may reach them, metrics
endpoints, quorum and companion-role needs. The registry builds the site-wide tables from these
(the port table and its collisions, the firewall of the base OS module, the scrape targets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keybuzz.site.schema import Quorum

# A source of traffic that is not a servers.tsv role: the managed load balancers (their VIPs, and
# the addresses they check and forward from), as listed in keybuzz.yaml `load_balancers`.
LOAD_BALANCER = "load-balancer"

__all__ = ["LOAD_BALANCER", "MetricsEndpoint", "Port", "Quorum", "RoleNeed", "VolumePath"]


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
class MetricsEndpoint:
    """A Prometheus endpoint on the servers of `role` (scraped from the monitor servers)."""

    job: str
    role: str
    port: int
    path: str = "/metrics"


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
