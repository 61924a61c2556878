"""`keybuzz validate mariadb`: the seed's checks (connectivity, cluster) and what a Galera cluster
needs: every node a Synced member of one primary component of the full size, the same cluster
UUID everywhere, each node's health agent, a row written on one node readable on the two others
within a bound, a wrong password refused, commits synced at every commit."""

from __future__ import annotations

import asyncio
import secrets
import time

import pymysql

from keybuzz.contract import CheckResult, DeployContext
from keybuzz.contract.checks import concurrently, not_exercised, only_reading
from keybuzz.modules.mariadb import client, layout, state
from keybuzz.modules.mariadb.settings import MariadbSettings
from keybuzz.poll import describe
from keybuzz.site import Site

CHECK_TABLE = "keybuzz_check"
REPLICATION_BOUND_S = 5.0


async def states(site: Site) -> list[state.NodeState]:
    return list(await asyncio.gather(*(state.via_agent(site, s.hostname) for s in layout.nodes(site))))


async def check_cluster(site: Site, found: list[state.NodeState]) -> CheckResult:
    name = f"{len(layout.nodes(site))} Synced nodes in one primary component, one cluster UUID"
    problems = state.cluster_problems(site, found)
    uuid = next((s.cluster_uuid for s in found if s.healthy), "")
    return CheckResult(name, not problems, "; ".join(problems) or f"size {len(found)}, UUID {uuid}")


def check_agents(found: list[state.NodeState]) -> list[CheckResult]:
    return [CheckResult(f"health agent on {s.hostname} (:{layout.HEALTH_PORT}) answers 200", s.healthy, s.summary)
            for s in found]


def _write_then_read_elsewhere(site: Site, writer: str, readers: list[str], token: str) -> dict[str, float | None]:
    client.query(site, writer, f"CREATE TABLE IF NOT EXISTS {CHECK_TABLE} (token VARCHAR(64) PRIMARY KEY, "
                               "written_at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))")
    client.query(site, writer, f"INSERT INTO {CHECK_TABLE} (token) VALUES (%s)", (token,))
    started, seen = time.monotonic(), {}
    pending = list(readers)
    while pending and time.monotonic() - started < REPLICATION_BOUND_S:
        for reader in list(pending):
            try:
                if client.query(site, reader, f"SELECT 1 FROM {CHECK_TABLE} WHERE token = %s", (token,)):
                    seen[reader] = round(time.monotonic() - started, 3)
                    pending.remove(reader)
            except pymysql.MySQLError:
                pass
        time.sleep(0.05)
    client.query(site, writer, f"DELETE FROM {CHECK_TABLE} WHERE token = %s", (token,))
    return {**seen, **dict.fromkeys(pending)}


async def check_replication(site: Site) -> CheckResult:
    nodes = [str(s.private_ip) for s in layout.nodes(site)]
    names = {str(s.private_ip): s.hostname for s in layout.nodes(site)}
    name = f"a row written on {names[nodes[0]]} is read on the others within {REPLICATION_BOUND_S:g} s"
    try:
        seen = await asyncio.to_thread(_write_then_read_elsewhere, site, nodes[0], nodes[1:], secrets.token_hex(8))
    except pymysql.MySQLError as exc:
        return CheckResult(name, False, describe(exc))
    missing = [names[ip] for ip, s in seen.items() if s is None]
    detail = ", ".join(f"{names[ip]} {s} s" for ip, s in seen.items() if s is not None)
    return CheckResult(name, not missing, detail + (f"; not seen on {', '.join(missing)}" if missing else ""))


async def check_wrong_password(site: Site) -> CheckResult:
    name = "a wrong password is refused"
    ip = str(layout.nodes(site)[0].private_ip)
    try:
        await asyncio.to_thread(lambda: client.connect(site, ip, password="wrong-" + secrets.token_hex(8)).close())
    except pymysql.err.OperationalError as exc:
        refused = exc.args and exc.args[0] == 1045
        return CheckResult(name, bool(refused), "access denied (1045)" if refused else describe(exc))
    return CheckResult(name, False, "a wrong password was accepted")


async def check_durability(site: Site) -> CheckResult:
    wanted = site.settings(MariadbSettings).innodb_flush_log_at_trx_commit
    name = f"innodb_flush_log_at_trx_commit = {wanted} on every node"
    values = {}
    for server in layout.nodes(site):
        try:
            rows = await asyncio.to_thread(client.query, site, str(server.private_ip),
                                           "SELECT @@innodb_flush_log_at_trx_commit")
            values[server.hostname] = int(str(rows[0][0]))
        except pymysql.MySQLError as exc:
            return CheckResult(name, False, f"{server.hostname}: {describe(exc)}")
    bad = {h: v for h, v in values.items() if v != wanted}
    return CheckResult(name, not bad, ", ".join(f"{h} {v}" for h, v in values.items()))


async def validate(ctx: DeployContext) -> list[CheckResult]:
    site = ctx.site
    found = await states(site)
    if only_reading(ctx):
        return [await check_cluster(site, found), *check_agents(found),
                not_exercised(layout.MODULE, "replication, wrong password and durability checks")]
    cluster, replication, wrong_password, durability = await concurrently(
        check_cluster(site, found), check_replication(site), check_wrong_password(site), check_durability(site))
    return [cluster, *check_agents(found), replication, wrong_password, durability]
