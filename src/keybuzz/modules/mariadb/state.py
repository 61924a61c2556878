"""A node's Galera state as keybuzz reads it: over SQL inside its container (deploy), or from its
health agent over HTTP (checks, drills). Both go through galera_health.verdict, one rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keybuzz import jsonhttp
from keybuzz.contract import DeployContext
from keybuzz.modules.mariadb import galera_health, layout, sql
from keybuzz.poll import describe
from keybuzz.site import Site

AGENT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class NodeState:
    hostname: str
    answering: bool  # mariadbd answered (SQL or through its agent)
    healthy: bool = False  # Synced member of the primary component, ready, not desynced
    primary: bool = False
    state: str = ""
    cluster_size: int = 0
    cluster_uuid: str = ""
    last_committed: int = -1
    problems: tuple[str, ...] = field(default=())

    @property
    def gcomm_closed(self) -> bool:
        """mariadbd up but in no group at all (Initialized, size 0): starting, or shut out for good
        (evicted, a restored node UUID on its peers' evict list; see MariadbDeploy._joined)."""
        return self.answering and not self.primary and self.state == "Initialized" and self.cluster_size == 0

    @property
    def summary(self) -> str:
        if not self.answering:
            return f"{self.hostname}: {'; '.join(self.problems) or 'not answering'}"
        return (f"{self.hostname}: {self.state or '?'}, {'primary' if self.primary else 'NOT primary'}, "
                f"size {self.cluster_size}" + (f" ({'; '.join(self.problems)})" if self.problems else ""))


def from_body(hostname: str, code: int, body: dict[str, Any]) -> NodeState:
    return NodeState(hostname, bool(body.get("reachable")), code == 200, bool(body.get("primary")),
                     str(body.get("state", "")), int(body.get("cluster_size") or 0), str(body.get("cluster_uuid", "")),
                     int(body.get("last_committed", -1)), tuple(body.get("problems") or ()))


async def via_sql(ctx: DeployContext, hostname: str) -> NodeState:
    try:
        rows = await sql.mariadb(ctx, hostname, f"{galera_health.STATUS_SQL}; {galera_health.DESYNC_SQL};",
                                 timeout=15)
    except Exception as exc:  # a stopped container, a booting server: not answering, with the reason
        return NodeState(hostname, False, problems=(describe(exc),))
    status = {row[0]: row[1] for row in rows if len(row) == 2}
    desync = next((row[0] for row in rows if len(row) == 1), "")
    return from_body(hostname, *galera_health.verdict(status, desync))


async def via_agent(site: Site, hostname: str) -> NodeState:
    ip = str(site.server(hostname).private_ip)
    try:
        code, body = await jsonhttp.request(f"http://{ip}:{layout.HEALTH_PORT}/", timeout=AGENT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return NodeState(hostname, False, problems=(f"health agent unreachable: {describe(exc)}",))
    if not isinstance(body, dict):
        return NodeState(hostname, False, problems=(f"health agent answered {code}: {str(body)[:80]}",))
    return from_body(hostname, code, body)


def cluster_problems(site: Site, states: list[NodeState]) -> list[str]:
    """Empty when every node is a healthy member of one primary component of the whole size."""
    wanted = len(layout.nodes(site))
    problems = [s.summary for s in states if not s.healthy]
    sizes = {s.cluster_size for s in states if s.healthy}
    if sizes and sizes != {wanted}:
        problems.append(f"cluster size {', '.join(map(str, sorted(sizes)))}, want {wanted}")
    uuids = {s.cluster_uuid for s in states if s.healthy}
    if len(uuids) > 1:
        problems.append(f"nodes report different cluster state UUIDs: {', '.join(sorted(uuids))}")
    return problems
