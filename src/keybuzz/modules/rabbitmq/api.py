"""RabbitMQ's management API, asked from the control machine (private network or lab bridge), and
pure parsers of its answers (basic auth in memory: keybuzz.jsonhttp)."""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import Any

from keybuzz import jsonhttp
from keybuzz.modules.rabbitmq import layout
from keybuzz.poll import describe
from keybuzz.site import Site

TIMEOUT_S = 3.0


def _auth(site: Site, role: str = "ADMIN") -> str:
    creds = site.credentials[layout.MODULE]
    return jsonhttp.basic_auth(creds[f"RABBITMQ_{role}_USER"], creds[f"RABBITMQ_{role}_PASSWORD"])


async def call(site: Site, ip: str, path: str, *, method: str = "GET", body: Any = None, role: str = "ADMIN",
               timeout: float = TIMEOUT_S) -> tuple[int, Any]:
    """(status, parsed body) of one management API call on one node; raises OSError/TimeoutError."""
    url = f"http://{ip}:{layout.MANAGEMENT_PORT}/api{path}"
    return await jsonhttp.request(url, method=method, body=body, auth=_auth(site, role), timeout=timeout)


def quote(name: str) -> str:
    """A vhost or queue name in an API path (`/` is `%2F`)."""
    return urllib.parse.quote(name, safe="")


@dataclass(frozen=True)
class NodeView:
    """One node's own view of the cluster (GET /api/nodes on it), or why it did not answer."""

    hostname: str
    reachable: bool
    running: tuple[str, ...] = ()  # nodes it sees running
    partitions: tuple[str, ...] = ()  # nodes it is partitioned from
    alarms: tuple[str, ...] = ()  # "<node> memory" / "<node> disk"
    error: str = ""


def parse_nodes(hostname: str, doc: Any) -> NodeView:
    if not isinstance(doc, list):
        return NodeView(hostname, False, error=f"unexpected answer {str(doc)[:80]}")
    running = tuple(sorted(n["name"] for n in doc if n.get("running")))
    partitions = tuple(sorted({p for n in doc for p in n.get("partitions") or []}))
    alarms = tuple(f"{n['name']} {kind}" for n in doc for key, kind in (("mem_alarm", "memory"),
                                                                        ("disk_free_alarm", "disk"))
                   if n.get(key))
    return NodeView(hostname, True, running, partitions, alarms)


async def node_view(site: Site, hostname: str, ip: str) -> NodeView:
    try:
        status, doc = await call(site, ip, "/nodes")
    except (OSError, TimeoutError) as exc:
        return NodeView(hostname, False, error=describe(exc, waited=TIMEOUT_S))
    if status != 200:
        return NodeView(hostname, False, error=f"/api/nodes answered {status}")
    return parse_nodes(hostname, doc)


async def views(site: Site) -> list[NodeView]:
    return list(await asyncio.gather(*(node_view(site, s.hostname, str(s.private_ip)) for s in layout.nodes(site))))


def cluster_problems(site: Site, found: list[NodeView]) -> list[str]:
    """Empty when every node answers and sees every node running, no partition, no alarm."""
    wanted = sorted(layout.node_name(s) for s in layout.nodes(site))
    problems = []
    for view in found:
        if not view.reachable:
            problems.append(f"{view.hostname}: management API unreachable ({view.error})")
            continue
        missing = sorted(set(wanted) - set(view.running))
        if missing:
            problems.append(f"{view.hostname} sees {', '.join(missing)} not running")
        if view.partitions:
            problems.append(f"{view.hostname} is partitioned from {', '.join(view.partitions)}")
        if view.alarms:
            problems.append(f"{view.hostname} reports alarms: {', '.join(view.alarms)}")
    return problems


@dataclass(frozen=True)
class QueueState:
    name: str
    leader: str = ""
    members: tuple[str, ...] = ()
    online: tuple[str, ...] = ()
    queue_type: str = ""


def parse_queue(doc: dict[str, Any]) -> QueueState:
    return QueueState(str(doc.get("name", "")), str(doc.get("leader") or doc.get("node") or ""),
                      tuple(doc.get("members") or ()), tuple(doc.get("online") or ()), str(doc.get("type", "")))


async def queue(site: Site, vhost: str, name: str) -> QueueState | None:
    """The queue as any answering node sees it (None when no node answers or it does not exist)."""
    for server in layout.nodes(site):
        try:
            status, doc = await call(site, str(server.private_ip), f"/queues/{quote(vhost)}/{quote(name)}")
        except (OSError, TimeoutError):
            continue
        if status == 200 and isinstance(doc, dict):
            return parse_queue(doc)
        if status == 404:
            return None
    return None
