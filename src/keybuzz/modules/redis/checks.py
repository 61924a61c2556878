"""`keybuzz validate redis`: the seed's three checks (connectivity, replication, Sentinel) and
the ones its round-robin setup lacked (auth enforced, the LB reaches the master only)."""

from __future__ import annotations

import secrets

import redis

from keybuzz.contract import CheckResult, DeployContext
from keybuzz.contract.checks import seen_detail, seen_within
from keybuzz.haproxy import one_up_problems
from keybuzz.modules.redis import client, layout, state
from keybuzz.modules.redis.settings import SentinelTuning
from keybuzz.poll import describe
from keybuzz.site import Site

REPLICATION_BOUND_S = 5.0


async def check_auth_required(site: Site, vip: str) -> CheckResult:
    name = "auth required through the LB"
    try:
        await client.call(vip, layout.REDIS_PORT, None, "PING")
    except redis.AuthenticationError:
        return CheckResult(name, True, "PING without a password is refused (NOAUTH)")
    except (redis.RedisError, OSError) as exc:
        return CheckResult(name, False, describe(exc))
    return CheckResult(name, False, "PING without a password was answered: requirepass is not in force")


async def check_vip_read_write(site: Site, vip: str) -> CheckResult:
    name = "AUTH, PING, SET, GET through the LB"
    key, value = f"keybuzz:check:{secrets.token_hex(6)}", secrets.token_hex(8)
    conn = client.async_client(vip, layout.REDIS_PORT, site.secret("redis", "REDIS_PASSWORD"))
    try:
        await conn.ping()
        await conn.set(key, value, ex=60)
        got = await conn.get(key)
    except (redis.RedisError, OSError) as exc:
        return CheckResult(name, False, describe(exc))
    finally:
        await conn.aclose()
    return CheckResult(name, got == value, f"{vip}:{layout.REDIS_PORT}" if got == value else f"read back {got!r}")


async def check_vip_is_master(site: Site, vip: str, master_ip: str | None) -> CheckResult:
    name = "the LB reaches the master"
    password = site.secret("redis", "REDIS_PASSWORD")
    if master_ip is None:
        return CheckResult(name, False, "no master named by a majority of Sentinels")
    try:
        through_lb = await client.info(vip, password, "server")
        direct = await client.info(master_ip, password, "server")
    except (redis.RedisError, OSError) as exc:
        return CheckResult(name, False, describe(exc))
    same = through_lb.get("run_id") == direct.get("run_id")
    return CheckResult(name, same, f"master {layout.hostname_of(site, master_ip)}" if same
                       else "the LB reached another node than the master")


async def check_replication(site: Site, vip: str) -> CheckResult:
    """A write through the LB must be readable on every replica within the bound."""
    name = "replication: LB write read on every replica"
    password = site.secret("redis", "REDIS_PASSWORD")
    key, value = f"keybuzz:check:{secrets.token_hex(6)}", secrets.token_hex(8)
    nodes = await state.nodes(site)
    replicas = [n for n in nodes if n.reachable and n.role == "slave"]
    expected = len(layout.redis_servers(site)) - 1
    if len(replicas) != expected:
        return CheckResult(name, False, f"{len(replicas)} replicas reachable, want {expected}")
    try:
        await client.call(vip, layout.REDIS_PORT, password, "SET", key, value, "EX", "60")
    except (redis.RedisError, OSError) as exc:
        return CheckResult(name, False, describe(exc))

    def reader(ip: str):  # type: ignore[no-untyped-def]
        async def read() -> bool:
            return await client.call(ip, layout.REDIS_PORT, password, "GET", key) == value
        return read

    seen, missing = await seen_within(REPLICATION_BOUND_S, {n.hostname: reader(n.ip) for n in replicas})
    return CheckResult(name, not missing, seen_detail(seen, missing, REPLICATION_BOUND_S))


async def check_sentinels(site: Site) -> tuple[CheckResult, str | None]:
    name = "Sentinels agree on the master, see every replica and Sentinel"
    views = await state.sentinels(site)
    masters = {v.master_ip for v in views if v.reachable}
    master_ip = masters.pop() if len(masters) == 1 else None
    problems = state.sentinel_problems(site, views, master_ip)
    if master_ip:
        node = await state.node_state(site, layout.hostname_of(site, master_ip), master_ip)
        if node.role != "master":
            problems.append(f"{node.hostname} does not say role:master ({node.role or node.error})")
    detail = "; ".join(problems) if problems else f"master {layout.hostname_of(site, master_ip or '')}"
    return CheckResult(name, not problems, detail), master_ip if not problems else None


async def check_haproxy(site: Site, master_ip: str | None) -> list[CheckResult]:
    master = layout.hostname_of(site, master_ip) if master_ip else None
    results = []
    for host, up in (await state.haproxy_up(site)).items():
        problems = one_up_problems({host: up}, master)
        results.append(CheckResult(f"HAProxy {host}: one UP server, the master", not problems,
                                   "; ".join(problems) if problems else f"UP: {', '.join(up)}"))
    return results


async def check_persistence(site: Site) -> CheckResult:
    name = "AOF on and min-replicas-to-write in force on every node"
    password = site.secret("redis", "REDIS_PASSWORD")
    want = str(site.settings(SentinelTuning).min_replicas_to_write)
    problems = []
    for server in layout.redis_servers(site):
        conn = client.async_client(str(server.private_ip), layout.REDIS_PORT, password)
        try:
            config = await conn.config_get("appendonly") | await conn.config_get("min-replicas-to-write")
        except (redis.RedisError, OSError) as exc:
            problems.append(f"{server.hostname}: {describe(exc)}")
            continue
        finally:
            await conn.aclose()
        if config.get("appendonly") != "yes" or config.get("min-replicas-to-write") != want:
            problems.append(f"{server.hostname}: appendonly {config.get('appendonly')}, "
                            f"min-replicas-to-write {config.get('min-replicas-to-write')}")
    return CheckResult(name, not problems, "; ".join(problems) or "appendonly yes everywhere")


async def validate(ctx: DeployContext) -> list[CheckResult]:
    site = ctx.site
    sentinel_result, master_ip = await check_sentinels(site)
    results = [sentinel_result]
    vip = layout.vip(site)
    if vip is None:
        results.append(CheckResult("through the LB", False, "no load balancer lists port 6379 in keybuzz.yaml",
                                   available=False))
    else:
        results += [await check_auth_required(site, vip), await check_vip_read_write(site, vip),
                    await check_vip_is_master(site, vip, master_ip), await check_replication(site, vip)]
    results += await check_haproxy(site, master_ip)
    results.append(await check_persistence(site))
    return results
