"""`keybuzz validate postgres`: real clients through the load balancer, each node asked itself."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from keybuzz import haproxy
from keybuzz.contract import CheckResult, DeployContext
from keybuzz.contract.checks import concurrently, not_exercised, only_reading, seen_detail, seen_within
from keybuzz.errors import OperationFailed
from keybuzz.modules.postgres import api, layout
from keybuzz.modules.postgres.client import app_conninfo, lb_vip, query
from keybuzz.modules.postgres.lb import WRITE_BACKEND
from keybuzz.modules.postgres.patroni_config import ENCODING, LOCALE
from keybuzz.modules.postgres.settings import PG_STAT_STATEMENTS, PRODUCTION_PRELOAD, PatroniTuning, PostgresTuning
from keybuzz.modules.postgres.sql import literal, psql
from keybuzz.modules.postgres.vectors import check_vectors
from keybuzz.poll import describe
from keybuzz.secrets import redact
from keybuzz.site import Site

REPLICATION_BOUND_S = 5.0
POOL_CLIENTS = 6


async def check_cluster(site: Site, states: list[api.NodeState]) -> tuple[CheckResult, api.NodeState | None]:
    leader = api.leader_of(states)
    max_lag = site.settings(PatroniTuning).maximum_lag_on_failover
    parts = []
    for s in states:
        lag = api.replica_lag(leader, s) if leader and s is not leader else None
        parts.append(f"{s.hostname}={s.role or 'unreachable'}/{s.replication_state or s.state or '-'}"
                     + (f" tl {s.timeline}" if s.timeline is not None else "")
                     + (f" lag {lag} B" if lag is not None else ""))
    ok = api.healthy(states, max_lag) and len(states) >= 1
    return CheckResult("cluster: 1 leader, replicas streaming within maximum_lag_on_failover", ok,
                       "; ".join(parts)), leader


async def check_port(site: Site, port: int, name: str, expect_recovery: bool | None) -> CheckResult:
    vip = lb_vip(site)
    try:
        rows = await asyncio.to_thread(query, site, vip, port, "SELECT pg_is_in_recovery(), inet_server_addr()")
    except psycopg.Error as exc:
        return CheckResult(name, False, describe(exc))
    in_recovery, server = rows[0]
    ok = expect_recovery is None or in_recovery == expect_recovery
    role = "replica" if in_recovery else "primary"
    return CheckResult(name, ok, f"{vip}:{port} as the application role reached a {role} ({server})")


async def check_replication(site: Site, states: list[api.NodeState]) -> CheckResult:
    name = f"replication: a row written on 5432 is read on every replica within {REPLICATION_BOUND_S:.0f} s"
    vip, token = lb_vip(site), str(uuid.uuid4())
    replicas = [s for s in states if s.role == "replica" and s.reachable]
    if not replicas:
        return CheckResult(name, False, "no reachable replica")
    try:
        await asyncio.to_thread(query, site, vip, layout.WRITE_PORT,
                                "CREATE TABLE IF NOT EXISTS keybuzz_check (token text PRIMARY KEY, "
                                "at timestamptz NOT NULL DEFAULT now())")
        await asyncio.to_thread(query, site, vip, layout.WRITE_PORT,
                                "INSERT INTO keybuzz_check (token) VALUES (%s)", (token,))
    except psycopg.Error as exc:
        return CheckResult(name, False, f"write failed: {describe(exc)}")

    def reader(ip: str):  # type: ignore[no-untyped-def]
        async def read() -> bool:
            return bool(await asyncio.to_thread(query, site, ip, layout.PG_PORT,
                                                "SELECT 1 FROM keybuzz_check WHERE token = %s", (token,)))
        return read

    try:
        seen, missing = await seen_within(REPLICATION_BOUND_S, {r.hostname: reader(r.ip) for r in replicas})
    finally:
        await asyncio.to_thread(query, site, vip, layout.WRITE_PORT,
                                "DELETE FROM keybuzz_check WHERE token = %s", (token,))
    return CheckResult(name, not missing, seen_detail(seen, missing, REPLICATION_BOUND_S))


async def check_pgbouncer_pooling(site: Site) -> CheckResult:
    """Transaction pooling: sequential clients share server backends (session mode: one each)."""
    name = "pgbouncer: transaction pooling on 6432 shares server connections"
    vip = lb_vip(site)

    def run() -> set[int]:
        conns = [psycopg.connect(**app_conninfo(site, vip, layout.PGBOUNCER_PORT), autocommit=True,
                                 prepare_threshold=None) for _ in range(POOL_CLIENTS)]
        try:
            return {conn.execute("SELECT pg_backend_pid()").fetchone()[0] for conn in conns}  # type: ignore[index]
        finally:
            for conn in conns:
                conn.close()
    try:
        pids = await asyncio.to_thread(run)
    except psycopg.Error as exc:
        return CheckResult(name, False, describe(exc))
    limit = max(1, len(site.with_role("haproxy")))
    return CheckResult(name, len(pids) <= limit,
                       f"{POOL_CLIENTS} open clients used {len(pids)} server backend(s) (at most {limit} expected)")


async def check_pgbouncer_wrong_password(site: Site) -> CheckResult:
    name = "pgbouncer: a wrong password is refused"
    info = app_conninfo(site, lb_vip(site), layout.PGBOUNCER_PORT)
    info["password"] = "wrong-" + uuid.uuid4().hex

    def run() -> str | None:
        try:
            psycopg.connect(**info, autocommit=True).close()  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        return None
    refused = await asyncio.to_thread(run)
    return CheckResult(name, refused is not None, redact(refused or "a wrong password was accepted"))


def haproxies(site: Site) -> dict[str, str]:
    return {s.hostname: str(s.private_ip) for s in site.with_role("haproxy")}


async def haproxy_write_up(site: Site, only: str | None = None) -> dict[str, list[str] | str]:
    """Per haproxy server (or just `only`): the UP servers of the write backend, or why its stats failed."""
    chosen = {h: ip for h, ip in haproxies(site).items() if only in (None, h)}
    return await haproxy.up_by_haproxy(chosen, layout.stats_port(site), WRITE_BACKEND)


async def check_haproxy(site: Site, leader: api.NodeState | None) -> CheckResult:
    name = "haproxy: exactly one UP server on the write backend, the leader"
    up = await haproxy_write_up(site)
    problems = haproxy.one_up_problems(up, leader.hostname if leader else None)
    detail = "; ".join(f"{h}: UP {v}" if isinstance(v, list) else f"{h}: {v}" for h, v in up.items())
    return CheckResult(name, not problems, "; ".join(problems) if problems else detail)


async def check_preload(ctx: DeployContext, leader: api.NodeState | None) -> CheckResult:
    """pg_stat_statements as production runs it; a build without it is a lab gap, and a site that
    preloads something else than production says so."""
    name = "pg_stat_statements: preloaded (query statistics), as in production"
    if leader is None:
        return CheckResult(name, False, "no leader to ask")
    wanted = ctx.site.settings(PostgresTuning).preload_libraries
    differs = "" if wanted == PRODUCTION_PRELOAD else (
        f"; this site's tuning.postgres.preload_libraries is {list(wanted)}, production's {list(PRODUCTION_PRELOAD)}")
    try:  # shared_preload_libraries is readable by superusers only
        rows = await psql(ctx, leader.hostname, "SELECT current_setting('shared_preload_libraries'), (SELECT count(*) "
                          f"FROM pg_available_extensions WHERE name = {literal(PG_STAT_STATEMENTS)});")
    except OperationFailed as exc:
        return CheckResult(name, False, str(exc))
    running, in_build = rows[0].rsplit("|", 1)
    if in_build == "0":
        return CheckResult(name, False, "not in this image's PostgreSQL build: a lab gap (the lab's PostgreSQL comes "
                           "from a PyPI wheel without contrib modules; the production image has it)" + differs,
                           available=False)
    loaded = PG_STAT_STATEMENTS in [lib.strip() for lib in running.split(",")]
    fix = "" if loaded else (f": add {PG_STAT_STATEMENTS} to tuning.postgres.preload_libraries, `keybuzz install`, "
                             "then `patronictl restart --pending`")
    return CheckResult(name, loaded, f"shared_preload_libraries = '{running}' on {leader.hostname}{differs}{fix}")


async def check_locale(site: Site) -> CheckResult:
    name = f"locale: the application database is {ENCODING}, {LOCALE} (what initdb was told)"
    try:
        rows = await asyncio.to_thread(query, site, lb_vip(site), layout.WRITE_PORT,
                                       "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
                                       "FROM pg_database WHERE datname = current_database()")
    except psycopg.Error as exc:
        return CheckResult(name, False, describe(exc))
    encoding, collate, ctype = rows[0]
    return CheckResult(name, (encoding, collate, ctype) == (ENCODING, LOCALE, LOCALE),
                       f"encoding {encoding}, LC_COLLATE {collate}, LC_CTYPE {ctype}")


async def check_icu(site: Site) -> CheckResult:
    """ICU orders text linguistically ('a' before 'B'); a build without ICU refuses ICU collations."""
    name = "ICU collations (the production build has them)"
    try:
        rows = await asyncio.to_thread(query, site, lb_vip(site), layout.WRITE_PORT,
                                       "SELECT 'a' < 'B' COLLATE \"unicode\"")
    except psycopg.errors.FeatureNotSupported as exc:
        return CheckResult(name, False, f"a lab gap: {describe(exc)}; the lab's PostgreSQL build has no ICU (the "
                           f"databases use the libc locale {LOCALE} everywhere, so nothing keybuzz creates needs it)",
                           available=False)
    except psycopg.Error as exc:
        return CheckResult(name, False, describe(exc))
    ok = rows[0][0] is True
    return CheckResult(name, ok, "the ICU collation \"unicode\" orders 'a' before 'B'" if ok else
                       "the ICU collation \"unicode\" ordered 'B' before 'a' (byte order, not ICU's)")


async def validate(ctx: DeployContext) -> list[CheckResult]:
    site = ctx.site
    states = await api.cluster_states(site)
    cluster, leader = await check_cluster(site, states)
    reading = [check_port(site, layout.WRITE_PORT, "connect 5432 (write) through the LB VIP", False),
               check_port(site, layout.READ_PORT, "connect 5433 (read) through the LB VIP", True),
               check_port(site, layout.PGBOUNCER_PORT, "connect 6432 (PgBouncer) through the LB VIP", False),
               check_haproxy(site, leader)]
    if only_reading(ctx):
        return [cluster, *await concurrently(*reading), not_exercised(
            layout.MODULE, "replication, pooling, wrong password, pgvector, preload, locale and ICU checks")]
    return [cluster, *await concurrently(
        *reading, check_replication(site, states), check_pgbouncer_pooling(site),
        check_pgbouncer_wrong_password(site), check_vectors(site, states, REPLICATION_BOUND_S),
        check_preload(ctx, leader), check_locale(site), check_icu(site))]
