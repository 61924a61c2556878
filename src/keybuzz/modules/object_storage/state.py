"""The storage cluster as its members see it, read over HTTP (no SSH): each master's raft view, the data
nodes the leader knows, each component's health endpoint, each HAProxy's UP gateways. Pure parsers
(tested on captured output) next to the fetches."""

from __future__ import annotations

import asyncio
import json
import urllib.error
from dataclasses import dataclass

from keybuzz import haproxy, jsonhttp
from keybuzz.modules.object_storage import layout
from keybuzz.poll import describe
from keybuzz.site import Site
from keybuzz.site.servers import Server

HTTP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class MasterView:
    hostname: str
    reachable: bool
    leader: str = ""  # the leader's IP as this master knows it ("" while it has none)
    is_leader: bool = False
    error: str = ""


def leader_ip(status: dict[str, object]) -> str:
    """/cluster/status names the leader as "ip:port.grpcport" (no Leader key while there is none)."""
    return str(status.get("Leader") or "").split(":", 1)[0]


def data_nodes(dir_status: dict[str, object]) -> dict[str, int]:
    """/dir/status of the leader: every registered volume server's IP -> its volume count."""
    topology = dir_status.get("Topology") or {}
    assert isinstance(topology, dict)
    return {str(node["Url"]).split(":", 1)[0]: int(node.get("Volumes", 0))
            for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []}


def volume_replicas(vol_status: dict[str, object]) -> dict[int, list[str]]:
    """/vol/status of the leader: volume id -> the servers (IPs) holding a replica."""
    replicas: dict[int, list[str]] = {}
    volumes = vol_status.get("Volumes") or {}
    assert isinstance(volumes, dict)
    for dc in (volumes.get("DataCenters") or {}).values():
        for rack in dc.values():
            for node, node_volumes in rack.items():
                for volume in node_volumes or []:
                    replicas.setdefault(int(volume["Id"]), []).append(node.split(":", 1)[0])
    return replicas


def _get(url: str) -> tuple[int, str]:
    try:
        with jsonhttp.open_url(url, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


async def get(url: str) -> tuple[int, str]:
    """HTTP status and body; raises OSError/TimeoutError when nothing answers."""
    return await asyncio.to_thread(_get, url)


async def get_json(url: str) -> dict[str, object]:
    status, body = await get(url)
    if status != 200:
        raise OSError(f"{url}: HTTP {status}")
    value = json.loads(body)
    return value if isinstance(value, dict) else {}


async def master_view(server: Server) -> MasterView:
    try:
        status = await get_json(f"http://{layout.master_address(server)}/cluster/status")
    except (OSError, TimeoutError, ValueError) as exc:
        return MasterView(server.hostname, False, error=describe(exc, waited=HTTP_TIMEOUT_S))
    return MasterView(server.hostname, True, leader_ip(status), bool(status.get("IsLeader")))


async def master_views(site: Site) -> list[MasterView]:
    return list(await asyncio.gather(*(master_view(s) for s in layout.storage_servers(site))))


def agreed_leader(views: list[MasterView]) -> str | None:
    """The leader IP a majority of all masters name (None without a majority)."""
    names = [v.leader for v in views if v.reachable and v.leader]
    best = max(set(names), key=names.count, default=None)
    return best if best and names.count(best) > len(views) // 2 else None


async def leader(site: Site) -> str | None:
    """The hostname of the master leader a majority names, or None (no cluster running, or no quorum)."""
    ip = agreed_leader(await master_views(site))
    return layout.hostname_of(site, ip) if ip else None


async def healthz(server: Server, port: int, path: str = "/healthz") -> str | None:
    """None when the endpoint answers 200, else why not."""
    try:
        status, body = await get(f"http://{server.private_ip}:{port}{path}")
    except (OSError, TimeoutError) as exc:
        return describe(exc, waited=HTTP_TIMEOUT_S)
    return None if status == 200 else f"HTTP {status} {body.strip()[:80]}"


async def registered_nodes(site: Site, leader_host: str) -> dict[str, int]:
    """hostname -> volumes, for every volume server the leader knows."""
    status = await get_json(f"http://{layout.master_address(site.server(leader_host))}/dir/status")
    return {layout.hostname_of(site, ip): count for ip, count in data_nodes(status).items()}


async def assign_problem(site: Site, leader_host: str) -> str | None:
    """None when the leader hands out file ids (a write can start), else why not: SeaweedFS refuses for
    15 s after every leader change while volume servers report in ("master is warming up")."""
    try:
        status, body = await get(f"http://{layout.master_address(site.server(leader_host))}/dir/assign")
    except (OSError, TimeoutError) as exc:
        return describe(exc, waited=HTTP_TIMEOUT_S)
    return None if status == 200 and '"fid"' in body else f"HTTP {status} {body.strip()[:120]}"


async def node_problems(site: Site, server: Server) -> list[str]:
    """What keeps one storage server from serving: each component's own health endpoint."""
    checks = (("master", layout.MASTER_PORT, "/cluster/healthz"), ("volume server", layout.VOLUME_PORT, "/healthz"),
              ("filer", layout.FILER_PORT, "/healthz"), ("S3 gateway", layout.S3_PORT, "/healthz"))
    answers = await asyncio.gather(*(healthz(server, port, path) for _, port, path in checks))
    return [f"{server.hostname} {name}: {answer}" for (name, _, _), answer in zip(checks, answers, strict=True)
            if answer]


async def raft_problems(site: Site) -> tuple[list[str], str | None]:
    """Empty when every master names one leader and it knows every volume server; and that leader's hostname."""
    views = await master_views(site)
    problems = [f"master {v.hostname} unreachable ({v.error})" for v in views if not v.reachable]
    ip = agreed_leader(views)
    if ip is None:
        return [*problems, "no master leader named by a majority of the masters"], None
    leader_host = layout.hostname_of(site, ip)
    problems += [f"master {v.hostname} names {layout.hostname_of(site, v.leader) if v.leader else 'no leader'}"
                 for v in views if v.reachable and v.leader != ip]
    try:
        known = await registered_nodes(site, leader_host)
    except (OSError, TimeoutError, ValueError) as exc:
        return [*problems, f"the leader's topology: {describe(exc, waited=HTTP_TIMEOUT_S)}"], leader_host
    problems += [f"volume server {s.hostname} not registered with the leader {leader_host}"
                 for s in layout.storage_servers(site) if s.hostname not in known]
    return problems, leader_host


async def cluster_problems(site: Site) -> list[str]:
    """Empty when the raft view is whole and every server's master, volume server, filer and gateway are healthy."""
    problems, _ = await raft_problems(site)
    for found in await asyncio.gather(*(node_problems(site, s) for s in layout.storage_servers(site))):
        problems += found
    return problems


async def replication_problems(site: Site, leader_host: str, copies: int) -> tuple[list[str], int]:
    """Empty when every volume has `copies` replicas on distinct servers; and the number of volumes."""
    status = await get_json(f"http://{layout.master_address(site.server(leader_host))}/vol/status")
    replicas = volume_replicas(status)
    problems = [f"volume {vid}: {len(set(nodes))} replica(s) on "
                f"{', '.join(layout.hostname_of(site, n) for n in sorted(set(nodes)))} (want {copies})"
                for vid, nodes in sorted(replicas.items()) if len(set(nodes)) != copies or len(nodes) != copies]
    return problems, len(replicas)


async def minio_problems(site: Site) -> list[str]:
    answers = await asyncio.gather(*(healthz(s, layout.MINIO_PORT, "/minio/health/live")
                                     for s in layout.storage_servers(site)))
    return [f"{s.hostname} MinIO: {a}" for s, a in zip(layout.storage_servers(site), answers, strict=True) if a]


async def haproxy_up(site: Site, only: str | None = None) -> dict[str, list[str] | str]:
    """Per haproxy server (or just `only`): the gateways UP in its S3 backend, or why its stats did not answer."""
    hosts = {h.hostname: str(h.private_ip) for h in site.with_role("haproxy") if only in (None, h.hostname)}
    return await haproxy.up_by_haproxy(hosts, layout.stats_port(site), layout.BACKEND)


def all_up_problems(site: Site, up: dict[str, list[str] | str], expected: list[str] | None = None) -> list[str]:
    """Empty when every HAProxy has every gateway of `expected` (default: every storage server) UP."""
    wanted = sorted(expected if expected is not None else [s.hostname for s in layout.storage_servers(site)])
    problems = []
    for host, servers in up.items():
        if isinstance(servers, str):
            problems.append(f"{host}: {servers}")
        elif sorted(servers) != wanted:
            problems.append(f"{host}: UP {', '.join(sorted(servers)) or 'none'} (want {', '.join(wanted)})")
    return problems
