"""Failover drills for PostgreSQL: its drill hooks (keybuzz.contract.Module) and a psycopg probe.

The probe writes one row per 100 ms through VIP:5432 with ~1 s timeouts and no client retry, so
the gap we measure is the service's. Fault kinds come from DrillContext.faults (the lab, or the
container on real servers); `switchover` is Patroni's own planned switchover through its API.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg

from keybuzz.contract import DrillContext, RoundPlan, WriterProbe
from keybuzz.errors import OperationFailed
from keybuzz.modules.postgres import api, layout
from keybuzz.modules.postgres.client import app_conninfo, lb_vip
from keybuzz.modules.postgres.settings import PatroniTuning
from keybuzz.poll import NotYet, timed, wait_until
from keybuzz.site import Site

SCENARIOS: dict[str, str] = {
    "poweroff-leader": "power off the leader's server (link down, every process killed)",
    "crash-leader": "kill every process of the leader's server, network up (peers see resets)",
    "partition-leader": "cut the leader's server off the network, processes keep running",
    "isolate-leader": "cut the leader from the other db servers only (replicas, DCS): clients and HAProxy "
                      "still reach it",
    "switchover": "planned switchover through Patroni's REST API",
}
FAULT_KIND = {"poweroff-leader": "poweroff", "crash-leader": "crash", "partition-leader": "partition",
              "isolate-leader": "isolate"}
# PostgreSQL's answer to a commit whose wait for the synchronous standby was cancelled (a statement
# timeout, a cancel): success, with this WARNING, although no standby has the transaction.
NOT_REPLICATED = "canceling wait for synchronous replication"


class NotReplicated(Exception):
    """A commit PostgreSQL reported with a warning that no synchronous standby confirmed it."""
HEALTHY_TIMEOUT_S = 180
REJOIN_TIMEOUT_S = 180
TABLE = "keybuzz_drill"


class PostgresWriterProbe(WriterProbe):
    """INSERT of one unique id per call, autocommit, through the load balancer."""

    def __init__(self, site: Site, host: str, port: int = layout.WRITE_PORT):
        self.site, self.host, self.port = site, host, port
        self.run = uuid.uuid4().hex[:12]
        self._conn: psycopg.Connection[Any] | None = None
        self._warnings: list[str] = []

    def _connect(self, connect_timeout: int = 1) -> psycopg.Connection[Any]:
        # libpq treats connect_timeout 1 as 2 s; statement/lock timeouts bound the server side and
        # tcp_user_timeout the client side. HAProxy's shutdown-sessions ends sessions to a dead leader.
        conn = psycopg.connect(**app_conninfo(self.site, self.host, self.port, connect_timeout=connect_timeout),
                               autocommit=True, prepare_threshold=None, tcp_user_timeout=1000,
                               keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
                               options="-c statement_timeout=1000 -c lock_timeout=1000")
        conn.add_notice_handler(lambda notice: self._warnings.append(notice.message_primary or ""))
        return conn

    def ensure_table(self) -> None:
        with self._connect(connect_timeout=5) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (run text NOT NULL, id bigint NOT NULL, "
                         "at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run, id))")

    def write(self, write_id: int) -> str | None:
        """The INSERT, acknowledged only without PostgreSQL's not-replicated warning; returns the server."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        self._warnings.clear()
        try:
            row = self._conn.execute(f"INSERT INTO {TABLE} (run, id) VALUES (%s, %s) "
                                     "RETURNING host(inet_server_addr())", (self.run, write_id)).fetchone()
        except Exception:
            self.close()
            raise
        if any(NOT_REPLICATED in warning for warning in self._warnings):
            raise NotReplicated("committed locally only: the wait for the synchronous standby was cancelled")
        return str(row[0]) if row and row[0] else None

    def read_ids(self) -> set[int]:
        """Through VIP:5432, i.e. the current leader."""
        with self._connect(connect_timeout=5) as conn:
            rows = conn.execute(f"SELECT id FROM {TABLE} WHERE run = %s", (self.run,)).fetchall()
        return {int(r[0]) for r in rows}

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


async def wait_healthy(site: Site, timeout: float = HEALTHY_TIMEOUT_S) -> api.NodeState:
    """The leader of a cluster that is 1 leader + streaming replicas."""
    max_lag = site.settings(PatroniTuning).maximum_lag_on_failover

    async def healthy_leader() -> api.NodeState | None:
        states = await api.cluster_states(site)
        problems = api.cluster_problems(states, max_lag)
        if problems:
            raise NotYet("; ".join(problems))
        return api.leader_of(states)

    return await wait_until("1 leader + streaming replicas", healthy_leader, timeout=timeout, interval=0.5,
                            module=layout.MODULE)


async def wait_streaming(site: Site, hostname: str, timeout: float = REJOIN_TIMEOUT_S) -> float:
    """Seconds until `hostname` reports itself a streaming replica (after pg_rewind if needed)."""
    ip = str(site.server(hostname).private_ip)

    async def streaming() -> bool:
        state = await api.node_state(hostname, ip)
        if not state.is_streaming:
            raise NotYet(f"{hostname} is {state.role or 'unreachable'}/{state.replication_state or state.state or '-'}")
        return True

    return await timed(f"{hostname} streaming again after it came back", streaming, timeout=timeout,
                       interval=0.25, where=hostname, module=layout.MODULE)


async def set_synchronous(site: Site, enabled: bool) -> None:
    leader = await wait_healthy(site)
    status, current = await api.call(leader.ip, "/config")
    if isinstance(current, dict) and bool(current.get("synchronous_mode")) == enabled:
        return
    status, body = await api.call(leader.ip, "/config", method="PATCH", body={"synchronous_mode": enabled},
                                  site=site)
    if status != 200:
        raise OperationFailed(f"PATCH /config synchronous_mode failed ({status}): {body}", module=layout.MODULE,
                              step="drill prepare")
    if enabled:
        async def designated() -> bool:
            codes = await asyncio.gather(*(api.call(str(s.private_ip), "/sync") for s in site.with_role("db")),
                                         return_exceptions=True)
            return any(isinstance(c, tuple) and c[0] == 200 for c in codes)

        await wait_until("a synchronous standby after enabling synchronous_mode", designated, timeout=60,
                         interval=0.5, module=layout.MODULE)


class PostgresDrills:
    """Mixed into the module: its drill hooks."""

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        tuning = dctx.ctx.site.settings(PatroniTuning)
        return {"dcs": tuning.dcs, "ttl": tuning.ttl, "loop_wait": tuning.loop_wait,
                "retry_timeout": tuning.retry_timeout, "maximum_lag_on_failover": tuning.maximum_lag_on_failover,
                "synchronous_mode": bool(dctx.options.get("sync", tuning.synchronous_mode))}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        site = dctx.ctx.site
        await set_synchronous(site, bool(dctx.options.get("sync", site.settings(PatroniTuning).synchronous_mode)))
        await wait_healthy(site)

    async def finish_drill(self, dctx: DrillContext) -> None:
        """`--sync` is for the drill only: the cluster goes back to keybuzz.yaml's synchronous_mode."""
        site = dctx.ctx.site
        await set_synchronous(site, site.settings(PatroniTuning).synchronous_mode)

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        site = dctx.ctx.site
        leader = await wait_healthy(site)
        probe = PostgresWriterProbe(site, lb_vip(site))
        await asyncio.to_thread(probe.ensure_table)

        async def inject() -> None:
            if scenario == "switchover":
                status, body = await api.call(leader.ip, "/switchover", method="POST", site=site, timeout=60,
                                              body={"leader": leader.hostname})
                if status != 200:
                    raise OperationFailed(f"switchover refused ({status}): {body}", module=layout.MODULE,
                                          step="switchover")
            else:
                peers = [s.hostname for s in site.with_role("db") if s.hostname != leader.hostname]
                await dctx.faults.inject(FAULT_KIND[scenario], leader.hostname, peers)

        async def recover() -> float | None:
            if scenario != "switchover":
                await dctx.faults.restore(FAULT_KIND[scenario], leader.hostname)
            return await wait_streaming(site, leader.hostname)

        async def new_primary() -> str:
            return (await wait_healthy_leader(site)).hostname

        return RoundPlan(scenario=scenario, target=leader.hostname, probe=probe, inject=inject, recover=recover,
                         new_primary=new_primary, max_outage_s=180.0, target_address=leader.ip)


async def wait_healthy_leader(site: Site, timeout: float = 60.0) -> api.NodeState:
    async def single_leader() -> api.NodeState | None:
        return api.leader_of(await api.cluster_states(site))

    return await wait_until("a single leader after the fault", single_leader, timeout=timeout, interval=0.5,
                            module=layout.MODULE)
