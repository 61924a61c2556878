"""Patroni's REST API, asked directly from the control machine (private network or lab bridge).

Unsafe calls (PATCH /config, POST /switchover, /reload) carry HTTP basic auth (keybuzz.jsonhttp).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from keybuzz import jsonhttp
from keybuzz.jsonhttp import basic_auth
from keybuzz.modules.postgres import layout
from keybuzz.site import Site

TIMEOUT_S = 2.0


@dataclass(frozen=True)
class NodeState:
    """One node's own view (GET /patroni), never the cluster view of another node."""

    hostname: str
    ip: str
    reachable: bool
    role: str = ""  # primary | replica | ""
    state: str = ""  # running | streaming | starting | stopped ...
    replication_state: str = ""  # streaming | in archive recovery ... (replicas)
    timeline: int | None = None
    wal_position: int | None = None  # primary: current location; replica: replayed location

    @property
    def is_leader(self) -> bool:
        return self.reachable and self.role in ("primary", "master") and self.state == "running"

    @property
    def is_streaming(self) -> bool:
        return self.reachable and self.role == "replica" and self.replication_state == "streaming"


def _auth_header(site: Site) -> str:
    creds = site.credentials[layout.MODULE]
    return basic_auth(creds["PATRONI_RESTAPI_USER"], creds["PATRONI_RESTAPI_PASSWORD"])


async def call(ip: str, path: str, *, method: str = "GET", body: dict[str, Any] | None = None,
               site: Site | None = None, port: int = layout.REST_PORT,
               timeout: float = TIMEOUT_S) -> tuple[int, Any]:
    """(status, parsed body). `site` given means: authenticate (unsafe endpoints)."""
    auth = _auth_header(site) if site is not None else None
    return await jsonhttp.request(f"http://{ip}:{port}{path}", method=method, body=body, auth=auth, timeout=timeout)


def _parse_state(hostname: str, ip: str, doc: dict[str, Any]) -> NodeState:
    xlog = doc.get("xlog") or {}
    position = xlog.get("location", xlog.get("replayed_location"))
    return NodeState(hostname=hostname, ip=ip, reachable=True, role=str(doc.get("role", "")),
                     state=str(doc.get("state", "")), replication_state=str(doc.get("replication_state", "")),
                     timeline=doc.get("timeline"), wal_position=position)


async def node_state(hostname: str, ip: str) -> NodeState:
    try:
        status, doc = await call(ip, "/patroni")
    except (OSError, TimeoutError):
        return NodeState(hostname, ip, reachable=False)
    if not isinstance(doc, dict) or (status >= 500 and "role" not in doc):
        return NodeState(hostname, ip, reachable=False)
    return _parse_state(hostname, ip, doc)


async def cluster_states(site: Site) -> list[NodeState]:
    servers = site.with_role("db")
    return list(await asyncio.gather(*(node_state(s.hostname, str(s.private_ip)) for s in servers)))


def leader_of(states: list[NodeState]) -> NodeState | None:
    leaders = [s for s in states if s.is_leader]
    return leaders[0] if len(leaders) == 1 else None


def replica_lag(leader: NodeState, replica: NodeState) -> int | None:
    if leader.wal_position is None or replica.wal_position is None:
        return None
    return max(0, leader.wal_position - replica.wal_position)


def cluster_problems(states: list[NodeState], max_lag: int) -> list[str]:
    """Why the cluster is not 1 leader + every other node streaming within the failover lag (empty: it is)."""
    leader = leader_of(states)
    if leader is None:
        leaders = [s.hostname for s in states if s.is_leader]
        return [f"{len(leaders)} leaders ({', '.join(leaders) or 'none'}); "
                + ", ".join(f"{s.hostname} {s.role or 'unreachable'}/{s.state or '-'}" for s in states)]
    problems = []
    for replica in (s for s in states if s is not leader):
        lag = replica_lag(leader, replica)
        if not replica.is_streaming:
            problems.append(f"{replica.hostname} is not streaming ({replica.role or 'unreachable'}/"
                            f"{replica.replication_state or replica.state or '-'})")
        elif lag is None or lag > max_lag:
            problems.append(f"{replica.hostname} lags {lag} bytes (maximum_lag_on_failover {max_lag})")
    return problems


def healthy(states: list[NodeState], max_lag: int) -> bool:
    """Exactly one leader and every other node streaming within the failover lag."""
    return not cluster_problems(states, max_lag)
