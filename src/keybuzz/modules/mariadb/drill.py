"""Failover drills of the MariaDB Galera module: a PyMySQL writer through the load balancer VIP
(lb-mariadb, 3306: the proxies, then the Galera writer), one INSERT per 100 ms, autocommit,
2 s timeouts, no client retry. The fault hits the node the proxies send writes to; `cold-start`
powers every node off and boots them all together: the cluster must come back by itself.

An INSERT counts as committed when MariaDB acknowledged it; lost when committed and missing after.
Certification conflicts (two writers at once) would show as deadlock errors (1213), counted by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pymysql

from keybuzz.contract import DrillContext, RoundPlan, WriterProbe, power_cycle_all
from keybuzz.modules.mariadb import client, layout
from keybuzz.modules.mariadb.checks import states
from keybuzz.modules.mariadb.settings import GaleraTuning
from keybuzz.modules.mariadb.state import cluster_problems
from keybuzz.poll import NotYet, wait_until
from keybuzz.site import Site

SCENARIOS: dict[str, str] = {
    "poweroff-writer": "power off the Galera node the proxies write to (peers see silence)",
    "crash-writer": "kill every process of that node (peers get resets)",
    "partition-writer": "cut that node off the network, then heal it",
    "isolate-writer": "cut that node from the other maria servers only: the proxies and clients still reach it "
                      "(it must leave the primary component and refuse writes)",
    "cold-start": "power every node off, then boot them all at once: the cluster must come back by itself",
}
FAULT_KIND = {"poweroff-writer": "poweroff", "crash-writer": "crash", "partition-writer": "partition",
              "isolate-writer": "isolate", "cold-start": "poweroff"}
TIMEOUT_S = 2.0
HEALTHY_TIMEOUT_S = 300.0


def vip(site: Site) -> tuple[str, int]:
    lb = site.config.load_balancer_for(layout.MYSQL_PORT)
    if lb is None:
        raise ValueError(f"no load balancer lists port {layout.MYSQL_PORT}: the drill goes through the VIP")
    return str(lb.vip), layout.MYSQL_PORT


class GaleraWriterProbe(WriterProbe):
    """INSERT of one unique id per call through the VIP; returns the address of the node that committed it."""

    def __init__(self, site: Site, host: str, port: int):
        self.site, self.host, self.port = site, host, port
        self.table = f"keybuzz_drill_{uuid.uuid4().hex[:8]}"
        self._conn: pymysql.connections.Connection | None = None

    def ensure_table(self) -> None:
        client.query(self.site, self.host, f"CREATE TABLE {self.table} (id BIGINT PRIMARY KEY, "
                                           "node VARCHAR(64) NOT NULL)", port=self.port, timeout=10)

    def write(self, write_id: int) -> str | None:
        if self._conn is None:
            self._conn = client.connect(self.site, self.host, port=self.port, timeout=TIMEOUT_S)
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(f"INSERT INTO {self.table} (id, node) VALUES (%s, @@wsrep_node_address) "
                               "RETURNING node", (write_id,))
                row = cursor.fetchone()
        except Exception:
            self.close()
            raise
        return str(row[0]) if row else None

    def client_address(self) -> str:
        """The address MariaDB sees this probe's connection come from: the proxy it goes through."""
        if self._conn is None:
            self._conn = client.connect(self.site, self.host, port=self.port, timeout=TIMEOUT_S)
        with self._conn.cursor() as cursor:
            cursor.execute("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
            row = cursor.fetchone()
        return str(row[0]) if row else ""

    def read_ids(self) -> set[int]:
        rows = client.query(self.site, self.host, f"SELECT id FROM {self.table}", port=self.port, timeout=10)
        ids = {int(str(r[0])) for r in rows}
        client.query(self.site, self.host, f"DROP TABLE {self.table}", port=self.port, timeout=10)
        return ids

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(pymysql.MySQLError):  # a broken connection cannot always say goodbye
                conn.close()


async def writer(site: Site) -> str:
    """The node the proxies send writes to, by asking through the VIP."""
    host, port = vip(site)
    try:
        rows = await asyncio.to_thread(client.query, site, host, "SELECT @@wsrep_node_name", port=port)
    except pymysql.MySQLError as exc:
        raise NotYet(f"no answer through the VIP: {exc}") from None
    return str(rows[0][0])


async def whole(site: Site) -> bool:
    problems = cluster_problems(site, await states(site))
    if problems:
        raise NotYet("; ".join(problems))
    return True


class MariadbDrills:
    """Mixed into MariadbModule: its drill hooks."""

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        tuning = dctx.ctx.site.settings(GaleraTuning)
        return {"evs.suspect_timeout_s": tuning.suspect_timeout_s, "evs.inactive_timeout_s": tuning.inactive_timeout_s,
                "client_timeout_s": TIMEOUT_S, "writer": "one at a time (the proxies' choice)"}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        await wait_until("a whole Galera cluster", lambda: whole(dctx.ctx.site), timeout=HEALTHY_TIMEOUT_S,
                         interval=1, module=layout.MODULE)

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        site = dctx.ctx.site
        await wait_until("a whole Galera cluster", lambda: whole(site), timeout=HEALTHY_TIMEOUT_S, interval=1,
                         module=layout.MODULE)
        host, port = vip(site)
        probe = GaleraWriterProbe(site, host, port)
        await asyncio.to_thread(probe.ensure_table)
        target = await wait_until("the writer through the VIP", lambda: writer(site), timeout=30, interval=0.5,
                                  module=layout.MODULE)
        kind = FAULT_KIND[scenario]
        all_nodes = [s.hostname for s in layout.nodes(site)]
        targets = all_nodes if scenario == "cold-start" else [target]
        peers = [h for h in all_nodes if h != target]
        marks: dict[str, float] = {}

        async def inject() -> None:
            if scenario == "cold-start":
                marks["boot"] = await power_cycle_all(dctx.faults, kind, targets)
            else:
                await dctx.faults.inject(kind, target, peers)

        async def recover() -> float | None:
            """Seconds from the restore to a whole cluster; for a cold start, from the boot (in inject)."""
            if scenario != "cold-start":
                await dctx.faults.restore(kind, target)
                marks["boot"] = time.monotonic()
            await wait_until(f"{target} back, {len(all_nodes)} Synced nodes", lambda: whole(site),
                             timeout=HEALTHY_TIMEOUT_S, interval=0.5, where=target, module=layout.MODULE)
            return round(time.monotonic() - marks["boot"], 2)

        return RoundPlan(scenario=scenario, target=",".join(targets), probe=probe, inject=inject, recover=recover,
                         new_primary=lambda: writer(site), max_outage_s=HEALTHY_TIMEOUT_S, settle_s=3.0,
                         target_address=None if scenario == "cold-start" else str(site.server(target).private_ip))
