"""The cluster as its members see it, read over the network (redis-py, no SSH): each node's own
role and replication link, each Sentinel's view of the master, each HAProxy's UP servers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis

from keybuzz import haproxy
from keybuzz.modules.redis import client, layout, lb
from keybuzz.poll import describe
from keybuzz.site import Site


@dataclass(frozen=True)
class NodeState:
    hostname: str
    ip: str
    reachable: bool
    role: str = ""  # master | slave
    master_ip: str = ""  # for a replica: the master it follows
    link_up: bool = False  # for a replica: master_link_status:up
    replicas: int = 0  # for a master: connected replicas
    error: str = ""


@dataclass(frozen=True)
class SentinelState:
    hostname: str
    ip: str
    reachable: bool
    master_ip: str = ""
    flags: str = ""
    replicas: int = 0  # num-slaves it knows
    sentinels: int = 0  # Sentinels it knows, itself included
    error: str = ""


def _passwords(site: Site) -> tuple[str, str]:
    return site.secret("redis", "REDIS_PASSWORD"), site.secret("redis", "REDIS_SENTINEL_PASSWORD")


async def node_state(site: Site, hostname: str, ip: str) -> NodeState:
    password, _ = _passwords(site)
    try:
        info = await client.info(ip, password)
    except (redis.RedisError, OSError) as exc:
        return NodeState(hostname, ip, False, error=describe(exc))
    role = str(info.get("role", ""))
    return NodeState(hostname, ip, True, role=role, master_ip=str(info.get("master_host", "")),
                     link_up=info.get("master_link_status") == "up", replicas=int(info.get("connected_slaves", 0)))


async def sentinel_state(site: Site, hostname: str, ip: str) -> SentinelState:
    _, sentinel_password = _passwords(site)
    try:
        master = await client.sentinel_master(ip, sentinel_password)
    except (redis.RedisError, OSError) as exc:
        return SentinelState(hostname, ip, False, error=describe(exc))
    return SentinelState(hostname, ip, True, master_ip=str(master.get("ip", "")), flags=str(master.get("flags", "")),
                         replicas=int(master.get("num-slaves", 0)),
                         sentinels=int(master.get("num-other-sentinels", 0)) + 1)


async def nodes(site: Site) -> list[NodeState]:
    return list(await asyncio.gather(*(node_state(site, s.hostname, str(s.private_ip))
                                       for s in layout.redis_servers(site))))


async def sentinels(site: Site) -> list[SentinelState]:
    return list(await asyncio.gather(*(sentinel_state(site, s.hostname, str(s.private_ip))
                                       for s in layout.redis_servers(site))))


async def sentinels_master(site: Site) -> str | None:
    """The master IP a majority of all Sentinels name (None without a majority)."""
    _, sentinel_password = _passwords(site)
    views = await client.sentinel_views([str(s.private_ip) for s in layout.redis_servers(site)], sentinel_password)
    return client.majority(views)


def replication_problems(states: list[NodeState]) -> list[str]:
    """Empty when exactly one node is master and every other follows it with its link up."""
    masters = [s for s in states if s.reachable and s.role == "master"]
    problems = [f"{s.hostname} unreachable ({s.error})" for s in states if not s.reachable]
    if len(masters) != 1:
        problems.append(f"{len(masters)} masters ({', '.join(m.hostname for m in masters) or 'none'})")
        return problems
    master = masters[0]
    for s in states:
        if s.reachable and s is not master and not (s.role == "slave" and s.master_ip == master.ip and s.link_up):
            problems.append(f"{s.hostname} is not a connected replica of {master.hostname} "
                            f"(role {s.role}, master {s.master_ip or '-'}, link {'up' if s.link_up else 'down'})")
    return problems


def sentinel_problems(site: Site, views: list[SentinelState], master_ip: str | None) -> list[str]:
    """Empty when every Sentinel names `master_ip`, sees n-1 replicas, n Sentinels, no down flag."""
    count = len(layout.redis_servers(site))
    problems = []
    for v in views:
        if not v.reachable:
            problems.append(f"sentinel {v.hostname} unreachable ({v.error})")
            continue
        if v.master_ip != master_ip:
            problems.append(f"sentinel {v.hostname} names {layout.hostname_of(site, v.master_ip)} as master")
        if v.replicas != count - 1 or v.sentinels != count:
            problems.append(f"sentinel {v.hostname} sees {v.replicas} replicas and {v.sentinels} sentinels "
                            f"(want {count - 1} and {count})")
        if "down" in v.flags:
            problems.append(f"sentinel {v.hostname} flags the master {v.flags}")
    return problems


async def haproxy_up(site: Site, only: str | None = None) -> dict[str, list[str] | str]:
    """Per haproxy server (or just `only`): the servers UP in backend redis, or why its stats did not answer."""
    hosts = {h.hostname: str(h.private_ip) for h in site.with_role("haproxy") if only in (None, h.hostname)}
    return await haproxy.up_by_haproxy(hosts, layout.stats_port(site), lb.BACKEND)
