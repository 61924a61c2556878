"""Ordered, health-gated deploy of the PostgreSQL module.

Fresh cluster: (etcd quorum) -> first node up and leader -> the others streaming -> app role and
database -> HAProxy + PgBouncer -> write path through the VIP. Existing cluster (also after a
failover): replicas first, the current leader last, never moving the leader back; patroni.yml
changes are applied with POST /reload and DCS settings with PATCH /config, not with restarts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from keybuzz.contract import DeployContext
from keybuzz.contract.context import file_sha256
from keybuzz.contract.rolling import roll
from keybuzz.errors import OperationFailed
from keybuzz.haproxy import one_up_problems
from keybuzz.modules.postgres import api, layout
from keybuzz.modules.postgres.approle import ensure_roles
from keybuzz.modules.postgres.checks import haproxy_write_up
from keybuzz.modules.postgres.client import connect_once, lb_vip
from keybuzz.modules.postgres.lb import userlist
from keybuzz.modules.postgres.patroni_config import dcs_settings
from keybuzz.modules.postgres.render import USERLIST
from keybuzz.modules.postgres.settings import PatroniTuning
from keybuzz.modules.postgres.sql import scram_verifier
from keybuzz.poll import NotYet, describe
from keybuzz.render import Plans, filled

LEADER_TIMEOUT_S = 120
CLUSTER_TIMEOUT_S = 180
WRITE_PATH_TIMEOUT_S = 60


def dcs_differences(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The part of `wanted` that differs from the DCS (values compared as text: 'on' == 'on')."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        have = current.get(key) if isinstance(current, dict) else None
        if isinstance(value, dict):
            sub = dcs_differences(have if isinstance(have, dict) else {}, value)
            if sub:
                patch[key] = sub
        elif str(have).lower() != str(value).lower():
            patch[key] = value
    return patch


class PostgresDeploy:
    """One deploy run; keeps what it learnt (the leader) between phases."""

    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site = ctx, ctx.site
        self.plans = plans
        self.db = [s.hostname for s in self.site.with_role("db")]
        self.lbs = [s.hostname for s in self.site.with_role("haproxy")]
        self.tuning = self.site.settings(PatroniTuning)

    async def run(self) -> None:
        ctx = self.ctx
        before = await self._patroni_yml_hashes()
        if self.tuning.dcs == "etcd":
            etcd_plans = {h: self.plans[h].without_containers(layout.PATRONI_CONTAINER) for h in self.db}
            # A new etcd cluster needs its members together to form; a running one is changed one
            # member at a time, so the DCS keeps its quorum and Patroni never demotes the leader.
            if not ctx.dry_run and await self._etcd_running():
                await roll(ctx, self.db, etcd_plans, settled=lambda host: self._etcd_healthy(),
                           what=lambda host: "etcd quorum (3 members healthy)", timeout=90, label="etcd on")
            else:
                async with ctx.phase("etcd on the db servers"):
                    await ctx.converge(self.db, etcd_plans)
                    await ctx.wait_for("etcd quorum (3 members healthy)", self._etcd_healthy, timeout=90)
        states = await api.cluster_states(self.site)
        leader = api.leader_of(states)
        if ctx.dry_run and leader is None:
            async with ctx.phase("db servers (dry-run: no cluster yet, later phases need one)"):
                await ctx.converge(self.db, self.plans)
                await ctx.converge(self.lbs, self.plans)
            return
        if leader is None:
            await self._bootstrap()
        else:
            await roll(ctx, self.db, self.plans, primary=leader.hostname, container=layout.PATRONI_CONTAINER,
                       hand_over=self._switchover, settled=lambda host: self._cluster_healthy(),
                       what=lambda host: "1 leader + streaming replicas", timeout=CLUSTER_TIMEOUT_S)
        async with ctx.phase("Patroni settings (POST /reload, PATCH /config)"):
            await self._reload_changed(before)
            await self._patch_dcs()
            leader_host = await self._leader()
        async with ctx.phase("application role and database, monitoring role"):
            await ensure_roles(ctx, leader_host)
        await self._load_balancers(leader_host)
        async with ctx.phase("the ways in through the load balancer"):
            await ctx.wait_for("5432 on the leader, 5433 on a replica, 6432 through PgBouncer, via the LB VIP",
                               self._lb_paths_ok, timeout=WRITE_PATH_TIMEOUT_S)

    # --- db servers -----------------------------------------------------------------------
    async def _bootstrap(self) -> None:
        """No leader yet. The DCS needs a quorum, so every node starts; only the first has a bootstrap
        section (it initialises the cluster), the others wait for it and clone it with pg_basebackup."""
        first = self.db[0]
        async with self.ctx.phase(f"start Patroni on the db servers; {first} bootstraps the cluster"):
            await self.ctx.converge([first], self.plans)
            await self.ctx.converge(self.db[1:], self.plans)
            # A fresh cluster: `first` leads. Containers that were stopped: whoever Patroni elects.
            await self.ctx.wait_for("one Patroni leader", self._has_leader, timeout=LEADER_TIMEOUT_S)
        async with self.ctx.phase("wait for the replicas to stream"):
            await self.ctx.wait_for("1 leader + streaming replicas", self._cluster_healthy, timeout=CLUSTER_TIMEOUT_S)

    async def _switchover(self, leader: str) -> None:
        """A planned switchover (~2 s of writes) instead of killing the leader (~20 s, the ttl)."""
        ip = str(self.site.server(leader).private_ip)

        answer: dict[str, object] = {}

        async def answered() -> bool:
            status, body = await api.call(ip, "/switchover", method="POST", site=self.site, timeout=60,
                                          body={"leader": leader})
            if status == 412 and "sync_standby" in str(body):
                # synchronous_mode: Patroni names a sync standby a loop after a replica came back
                raise NotYet(f"switchover refused for now ({status}): {body}")
            answer.update(status=status, body=body)
            return True

        await self.ctx.wait_for(f"{leader} answering a switchover request with a sync standby named", answered,
                                timeout=CLUSTER_TIMEOUT_S, where=leader)
        if answer["status"] != 200:  # any other refusal stops the deploy at once
            raise OperationFailed(f"switchover away from {leader} refused ({answer['status']}): {answer['body']}",
                                  host=leader, module=layout.MODULE, step="switchover")
        self.ctx.changed(leader, "POST /switchover: leader handed over before its container is recreated")

        async def moved() -> bool:
            new = api.leader_of(await api.cluster_states(self.site))
            if new is None or new.hostname == leader:
                raise NotYet(f"the leader is still {new.hostname if new else 'not elected'}")
            return await self._cluster_healthy()

        await self.ctx.wait_for("a new leader and streaming replicas", moved, timeout=CLUSTER_TIMEOUT_S)

    async def _patroni_yml_hashes(self) -> dict[str, str]:
        path = layout.host_paths(self.site).patroni_yml
        hashes = await asyncio.gather(*(file_sha256(self.ctx, h, path) for h in self.db))
        return dict(zip(self.db, hashes, strict=True))

    async def _reload_changed(self, before: dict[str, str]) -> None:
        """A patroni.yml that changed under a running Patroni is applied with POST /reload."""
        if self.ctx.dry_run:
            return
        after = await self._patroni_yml_hashes()
        for host in self.db:
            if before[host] and after[host] != before[host]:
                ip = str(self.site.server(host).private_ip)
                status, body = await api.call(ip, "/reload", method="POST", site=self.site)
                self.ctx.changed(host, f"patroni.yml changed, POST /reload -> {status}")
                if status >= 300:
                    raise OperationFailed(f"Patroni reload on {host} failed ({status}): {body}", host=host,
                                          module=layout.MODULE, step="reload")

    async def _patch_dcs(self) -> None:
        leader = await self._leader()
        ip = str(self.site.server(leader).private_ip)
        status, current = await api.call(ip, "/config")
        if status != 200 or not isinstance(current, dict):
            raise OperationFailed(f"GET /config on {leader} answered {status}", host=leader, module=layout.MODULE,
                                  step="dcs config")
        patch = dcs_differences(current, dcs_settings(self.site))
        if not patch:
            return
        self.ctx.changed(leader, f"PATCH /config: DCS settings differ from keybuzz.yaml: {sorted(_leaves(patch))}")
        if self.ctx.dry_run:
            return
        status, body = await api.call(ip, "/config", method="PATCH", body=patch, site=self.site)
        if status != 200:
            raise OperationFailed(f"PATCH /config failed ({status}): {body}", host=leader, module=layout.MODULE,
                                  step="dcs config")
        self.ctx.note("Patroni applies DCS settings without a restart; parameters that need one show as "
                      "pending_restart in `patronictl list`")

    # --- load balancers ---------------------------------------------------------------------
    async def _load_balancers(self, leader: str) -> None:
        """userlist.txt gets the SCRAM verifier read from the leader; then one haproxy server at a
        time: the load balancer keeps the other one while this one restarts."""
        if not self.lbs:
            return
        async with self.ctx.phase("read the application role's SCRAM verifier for PgBouncer"):
            creds = self.site.credentials[layout.MODULE]
            verifier = await scram_verifier(self.ctx, leader, creds["POSTGRES_APP_USER"])
            if verifier is None and not self.ctx.dry_run:
                raise OperationFailed("the application role has no SCRAM password", host=leader,
                                      module=layout.MODULE, step="pgbouncer userlist")
        values = {USERLIST.key: userlist(creds["POSTGRES_APP_USER"], verifier)} if verifier else {}
        lb_plans = filled({h: self.plans[h] for h in self.lbs}, values)
        await roll(self.ctx, self.lbs, lb_plans, settled=self._haproxy_settled, gate_unchanged=True,
                   what=lambda host: f"HAProxy on {host}: exactly one UP write server, the leader",
                   timeout=WRITE_PATH_TIMEOUT_S, label="HAProxy and PgBouncer on")

    # --- gates ------------------------------------------------------------------------------
    async def _has_leader(self) -> bool:
        states = await api.cluster_states(self.site)
        if api.leader_of(states) is None:
            raise NotYet(api.cluster_problems(states, self.tuning.maximum_lag_on_failover)[0])
        return True

    async def _cluster_healthy(self) -> bool:
        problems = api.cluster_problems(await api.cluster_states(self.site), self.tuning.maximum_lag_on_failover)
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _leader(self) -> str:
        leader = api.leader_of(await api.cluster_states(self.site))
        if leader is None:
            raise OperationFailed("no single Patroni leader", module=layout.MODULE, step="find leader",
                                  resume="check `patronictl list` in the patroni container of a db server")
        return leader.hostname

    async def _etcd_running(self) -> bool:
        try:
            return await self._etcd_healthy()
        except NotYet:
            return False

    async def _etcd_healthy(self) -> bool:
        async def one(server: str, ip: str) -> str:
            try:
                status, body = await api.call(ip, "/health", port=layout.ETCD_CLIENT_PORT)
            except (OSError, TimeoutError) as exc:
                return f"{server}: {describe(exc)}"
            healthy = status == 200 and isinstance(body, dict) and str(body.get("health")) == "true"
            return "" if healthy else f"{server}: /health answered {status} {body}"

        problems = [p for p in await asyncio.gather(*(one(s.hostname, str(s.private_ip))
                                                      for s in self.site.with_role("db"))) if p]
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _haproxy_settled(self, host: str) -> bool:
        """A (re)started HAProxy counts every server UP until its first check: wait for the checks."""
        leader = api.leader_of(await api.cluster_states(self.site))
        problems = one_up_problems(await haproxy_write_up(self.site, host), leader.hostname if leader else None)
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _lb_paths_ok(self) -> bool:
        """The LB and HAProxy mark backends UP only after `rise` checks: wait for all three ports."""
        vip = lb_vip(self.site)
        wanted = {layout.WRITE_PORT: False, layout.READ_PORT: True, layout.PGBOUNCER_PORT: False}
        for port, recovery in wanted.items():
            try:
                in_recovery = await asyncio.to_thread(connect_once, self.site, vip, port)
            except psycopg.Error as exc:
                raise NotYet(f"{vip}:{port}: {describe(exc)}") from None
            if in_recovery is not recovery:
                raise NotYet(f"{vip}:{port} reached a {'replica' if in_recovery else 'primary'}")
        return True


def _leaves(patch: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in patch.items():
        out += _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    started = time.monotonic()
    await PostgresDeploy(ctx, plans).run()
    ctx.note(f"postgres module deployed in {time.monotonic() - started:.1f} s")
