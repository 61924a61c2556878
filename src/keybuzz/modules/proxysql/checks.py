"""`keybuzz validate proxysql`: the seed's ProxySQL check and what one writer behind two proxies
needs: through the VIP a row written is read back, every connection lands on one Galera node,
and every proxy sends its clients to the same node. ProxySQL's own state (hostgroups, the admin
interface on 127.0.0.1 only) is read inside its container; on the lab's HAProxy stand-in those
checks say so instead of passing."""

from __future__ import annotations

import asyncio
import secrets

import pymysql

from keybuzz.contract import CheckResult, DeployContext
from keybuzz.contract.checks import concurrently, not_exercised, only_reading
from keybuzz.haproxy import up_by_haproxy
from keybuzz.modules.mariadb import client
from keybuzz.modules.mariadb import layout as maria_layout
from keybuzz.modules.proxysql import layout, probe, standin
from keybuzz.modules.proxysql.settings import ProxysqlSettings
from keybuzz.poll import describe
from keybuzz.site import Site

CONNECTIONS = 10
TABLE = "keybuzz_check_proxy"
STANDIN = ("the lab runs a stand-in: HAProxy with the Galera health agents on the proxysql servers "
           "(no ProxySQL package is reachable here)")
# ProxySQL's admin interface, inside its container (the admin client file is its /root/.my.cnf).
RUNTIME_SQL = "SELECT hostgroup_id, hostname, status FROM runtime_mysql_servers ORDER BY hostgroup_id, hostname;"


def vip(site: Site) -> str | None:
    return site.config.vip_for(layout.CLIENT_PORT)


def _round_trip(site: Site, host: str, token: str) -> bool:
    client.query(site, host, f"CREATE TABLE IF NOT EXISTS {TABLE} (token VARCHAR(64) PRIMARY KEY)")
    client.query(site, host, f"INSERT INTO {TABLE} VALUES (%s)", (token,))
    found = client.query(site, host, f"SELECT token FROM {TABLE} WHERE token = %s", (token,))
    client.query(site, host, f"DELETE FROM {TABLE} WHERE token = %s", (token,))
    return bool(found)


async def check_round_trip(site: Site, host: str) -> CheckResult:
    name = f"through the VIP {host}:{layout.CLIENT_PORT} as the application user: write, read back"
    try:
        ok = await asyncio.to_thread(_round_trip, site, host, secrets.token_hex(8))
    except pymysql.MySQLError as exc:
        return CheckResult(name, False, describe(exc))
    return CheckResult(name, ok, "row written and read back" if ok else "the row written was not read back")


async def check_one_writer(site: Site, host: str) -> CheckResult:
    name = f"{CONNECTIONS} connections through the VIP land on one Galera node"
    try:
        nodes = await probe.writers_through(site, host, CONNECTIONS)
    except pymysql.MySQLError as exc:
        return CheckResult(name, False, describe(exc))
    return CheckResult(name, len(nodes) == 1, f"on {', '.join(sorted(nodes))}")


async def check_same_writer(site: Site) -> CheckResult:
    name = "every proxy sends its clients to the same Galera node"
    seen: dict[str, str] = {}
    for server in layout.proxies(site):
        try:
            node, _ = await asyncio.to_thread(probe.who, site, str(server.private_ip))
        except pymysql.MySQLError as exc:
            return CheckResult(name, False, f"{server.hostname}: {describe(exc)}")
        seen[server.hostname] = node
    return CheckResult(name, len(set(seen.values())) == 1, ", ".join(f"{p} -> {n}" for p, n in seen.items()))


def parse_runtime_servers(text: str) -> list[tuple[int, str, str]]:
    """Rows of RUNTIME_SQL from the mysql client's batch output: (hostgroup, address, status)."""
    rows = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((int(parts[0]), parts[1], parts[2]))
    return rows


def runtime_problems(rows: list[tuple[int, str, str]], node_ips: list[str]) -> list[str]:
    """One ONLINE writer, every other node ONLINE as a backup writer (mysql_galera_hostgroups' view)."""
    online = {(hg, ip) for hg, ip, status in rows if status == "ONLINE"}
    writers = [ip for hg, ip in online if hg == layout.WRITER_HG]
    problems = [] if len(writers) == 1 else [f"{len(writers)} ONLINE writers: {', '.join(sorted(writers)) or 'none'}"]
    serving = {ip for hg, ip in online if hg in (layout.WRITER_HG, layout.BACKUP_WRITER_HG)}
    missing = [ip for ip in node_ips if ip not in serving]
    if missing:
        problems.append(f"not ONLINE as writer or backup writer: {', '.join(missing)}")
    return problems


async def check_proxysql_runtime(ctx: DeployContext, host: str) -> CheckResult:
    name = f"ProxySQL on {host}: one ONLINE writer, the other nodes ONLINE backup writers"
    argv = ctx.cli.exec(layout.PROXYSQL_CONTAINER, ["mysql", "--batch", "--skip-column-names"], stdin=True)
    result = await ctx.host(host).run(argv, check=False, timeout=15, stdin=RUNTIME_SQL)
    if not result.ok:
        return CheckResult(name, False, f"admin query failed: {result.stderr.strip()[-200:]}")
    problems = runtime_problems(parse_runtime_servers(result.stdout), [str(s.private_ip)
                                                                       for s in maria_layout.nodes(ctx.site)])
    return CheckResult(name, not problems, "; ".join(problems) or "as expected")


async def check_standin(site: Site) -> list[CheckResult]:
    results = [CheckResult("ProxySQL hostgroups and admin interface (127.0.0.1:6032 only)", False, STANDIN,
                           available=False)]
    hosts = {s.hostname: str(s.private_ip) for s in layout.proxies(site)}
    for host, up in (await up_by_haproxy(hosts, layout.stats_port(site), standin.BACKEND)).items():
        name = f"stand-in HAProxy on {host}: a Synced node is UP behind it"
        if isinstance(up, str):
            results.append(CheckResult(name, False, up))
        else:
            results.append(CheckResult(name, bool(up), f"UP {', '.join(up) or 'none'} (the first one serves)"))
    return results


async def validate(ctx: DeployContext) -> list[CheckResult]:
    site = ctx.site
    address = vip(site)
    results = []
    if address is None:
        results.append(CheckResult("through the VIP", False, f"no load balancer lists port {layout.CLIENT_PORT}",
                                   available=False))
        through_vip = []
    elif only_reading(ctx):
        results.append(not_exercised(layout.MODULE, "the write read back through the VIP"))
        through_vip = [check_one_writer(site, address)]
    else:
        through_vip = [check_round_trip(site, address), check_one_writer(site, address)]
    engine_checks = ([check_standin(site)] if site.settings(ProxysqlSettings).engine == "haproxy"
                     else [check_proxysql_runtime(ctx, s.hostname) for s in layout.proxies(site)])
    return results + await concurrently(*through_vip, check_same_writer(site), *engine_checks)
