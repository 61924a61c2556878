"""HAProxy, shared by the modules that put a service behind the haproxy servers: its config
(render and parse), its stats (read and parse), the "exactly one UP" rule, its container and image.

Each module runs its own HAProxy container on the haproxy servers (haproxy-<module>) with its own
file, as the seed had one file per service; a module's cleanup then never touches another
module's traffic. Every bind is the server's own private address (plus 127.0.0.1 where a peer on the
same server connects), never a wildcard: the managed load balancer owns the VIP (definitive design A)
and forwards to the servers' private addresses, and a public interface gets nothing. The containers
share the servers' network, so each has its own stats port: the site's `haproxy.stats_port` plus the
module's slot.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

from keybuzz import jsonhttp
from keybuzz.containers import ContainerSpec, Mount
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.poll import describe

CONFIG_IN_CONTAINER = "/usr/local/etc/haproxy/haproxy.cfg"
IMAGE = ImageSpec("haproxy", "haproxy:2.8.5", LabRecipe("2.6-bookworm", ("haproxy",)))
STATS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Section:
    kind: str  # frontend | backend | listen
    name: str
    lines: tuple[str, ...] = field(default=())


def render_config(sections: list[Section], *, address: str, stats_port: int, maxconn: int = 4096) -> str:
    """The whole file; `address` is the server's private address, where the stats listener binds
    (read by the installer and scraped by the monitor servers)."""
    head = [
        "# Rendered by keybuzz: edits are overwritten on the next install.",
        "global",
        "    log stdout format raw local0",
        f"    maxconn {maxconn}",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    timeout connect 3s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 2s",
        "",
        "listen stats",
        "    mode http",
        f"    bind {address}:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "",
    ]
    body = []
    for section in sections:
        body.append(f"{section.kind} {section.name}")
        body.extend(f"    {line}" for line in section.lines)
        body.append("")
    return "\n".join(head + body)


def parse_config(text: str) -> dict[str, list[str]]:
    """Sections as `"kind name"` -> stripped lines; used by lint and by tests."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("tcp-check") else raw.rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line.strip())
    return sections


def container(name: str, module: str, image: str, config_path: str) -> ContainerSpec:
    """An HAProxy container reading one rendered file; recreated when that file changes."""
    return ContainerSpec(
        name=name,
        image=image,
        module=module,
        command=("haproxy", "-W", "-db", "-f", CONFIG_IN_CONTAINER),
        mounts=(Mount(config_path, CONFIG_IN_CONTAINER, read_only=True),),
        restart_on=(config_path,),
    )


def stats_port(base: int, slot: int) -> int:
    """The stats port of the HAProxy container of the module with this slot (0 = the site's stats_port)."""
    return base + slot


def one_up_rule(backend: str) -> str:
    """A (re)started HAProxy counts every server UP until its first check: connections are refused,
    never sent to a replica, unless exactly one server (the primary) is UP."""
    return f"tcp-request connection reject unless {{ nbsrv({backend}) eq 1 }}"


@dataclass(frozen=True)
class ServerState:
    backend: str
    name: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (going up), MAINT, no check

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")


def parse_stats_csv(text: str) -> list[ServerState]:
    """Every server of every backend from HAProxy's `;csv` stats export."""
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [ServerState(row["pxname"], row["svname"], row.get("status") or "") for row in rows
            if row.get("svname") not in ("FRONTEND", "BACKEND", None)]


def up_servers(states: list[ServerState], backend: str) -> list[str]:
    return [s.name for s in states if s.backend == backend and s.up]


def _fetch(ip: str, port: int, timeout: float) -> str:
    with jsonhttp.open_url(f"http://{ip}:{port}/stats;csv", timeout=timeout) as response:
        return response.read().decode(errors="replace")


async def read_stats(ip: str, port: int, timeout: float = STATS_TIMEOUT_S) -> list[ServerState]:
    """One HAProxy's stats; raises OSError/TimeoutError when it does not answer."""
    return parse_stats_csv(await asyncio.to_thread(_fetch, ip, port, timeout))


async def up_by_haproxy(haproxies: Mapping[str, str], port: int, backend: str) -> dict[str, list[str] | str]:
    """Per haproxy server (hostname -> IP): the UP servers of `backend`, or why its stats did not answer."""

    async def one(ip: str) -> list[str] | str:
        try:
            return up_servers(await read_stats(ip, port), backend)
        except (OSError, TimeoutError) as exc:
            return f"stats unreachable ({describe(exc, waited=STATS_TIMEOUT_S)})"

    answers = await asyncio.gather(*(one(ip) for ip in haproxies.values()))
    return dict(zip(haproxies, answers, strict=True))


def one_up_problems(up: Mapping[str, list[str] | str], primary: str | None) -> list[str]:
    """Empty when every HAProxy has exactly one UP server and it is `primary` (the write-path rule)."""
    if primary is None:
        return ["no single primary to compare with"]
    problems = []
    for host, servers in up.items():
        if isinstance(servers, str):
            problems.append(f"{host}: {servers}")
        elif servers != [primary]:
            problems.append(f"{host}: UP {', '.join(servers) or 'none'} (want only {primary})")
    return problems
