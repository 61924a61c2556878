"""Ordered, health-gated deploy of the PostgreSQL module.

Fresh cluster: (etcd quorum) -> first node up and leader -> the others streaming -> app role and
database -> HAProxy + PgBouncer -> write path through the VIP. Existing cluster (also after a
failover): replicas first, the current leader last, never moving the leader back; patroni.yml
changes are applied with POST /reload and DCS settings with PATCH /config, not with restarts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import time
from typing import Any

import psycopg

from keybuzz.errors import OperationFailed
from keybuzz.modules.base import DeployContext
from keybuzz.modules.common import will_recreate
from keybuzz.modules.postgres import api, layout
from keybuzz.modules.postgres.approle import ensure_app_role
from keybuzz.modules.postgres.checks import haproxy_write_up
from keybuzz.modules.postgres.client import connect_once, lb_vip
from keybuzz.modules.postgres.lb import userlist
from keybuzz.modules.postgres.patroni_config import dcs_settings
from keybuzz.modules.postgres.sql import scram_verifier
from keybuzz.render import FileSpec, HostPlan, Plans

LEADER_TIMEOUT_S = 120
CLUSTER_TIMEOUT_S = 180
WRITE_PATH_TIMEOUT_S = 60


async def image_owner(ctx: DeployContext, hostname: str, image: str) -> str:
    """'uid:gid' of the image's postgres user: it must own the bind-mounted data directories.

    A dry-run never pulls: with the image absent it shows the placeholder owner instead."""
    cli = ctx.site.config.container_cli
    if ctx.dry_run:
        present = await ctx.host(hostname).run([cli, "image", "inspect", image], check=False, timeout=60)
        if not present.ok:
            ctx.note(f"dry-run: {image} is not on {hostname} yet; owners shown as {layout.OWNER_PLACEHOLDER}")
            return layout.OWNER_PLACEHOLDER
    script = f"id -u {layout.IMAGE_USER}; id -g {layout.IMAGE_USER}"
    argv = [cli, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", script]
    result = await ctx.host(hostname).run(argv, check=False, timeout=300)
    ids = result.stdout.split()
    if not result.ok or len(ids) != 2 or not all(i.isdigit() for i in ids):
        raise OperationFailed(f"cannot read the uid of user {layout.IMAGE_USER} in image {image}: "
                              f"{result.stderr.strip()[:200]}", host=hostname, module=layout.MODULE,
                              step="image user")
    return f"{ids[0]}:{ids[1]}"


def resolve_owners(plan: HostPlan, owner: str) -> HostPlan:
    """The rendered placeholder owner replaced by the image's real uid:gid."""
    def fix(spec: Any) -> Any:
        return dataclasses.replace(spec, owner=owner) if spec.owner == layout.OWNER_PLACEHOLDER else spec
    return HostPlan(plan.hostname, [fix(d) for d in plan.directories], [fix(f) for f in plan.files],
                    list(plan.containers))


def without_containers(plan: HostPlan, *names: str) -> HostPlan:
    return HostPlan(plan.hostname, list(plan.directories), list(plan.files),
                    [c for c in plan.containers if c.name not in names])


async def file_sha256(ctx: DeployContext, hostname: str, path: str) -> str:
    result = await ctx.host(hostname).run(["sh", "-c", f"sha256sum {shlex.quote(path)} 2>/dev/null || true"],
                                          check=False, timeout=30)
    return result.stdout.split()[0] if result.stdout.strip() else ""


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
    """One deploy run; keeps what it learnt (owners, leader) between phases."""

    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site = ctx, ctx.site
        self.plans = plans
        self.db = [s.hostname for s in self.site.with_role("db")]
        self.lbs = [s.hostname for s in self.site.with_role("haproxy")]
        self.max_lag = self.site.config.tuning.patroni.maximum_lag_on_failover

    async def run(self) -> None:
        ctx = self.ctx
        async with ctx.phase("read the postgres uid of the Patroni image"):
            owner = await image_owner(ctx, self.db[0], self.site.image("patroni"))
            db_plans = {h: resolve_owners(self.plans[h], owner) for h in self.db}
        before = await self._patroni_yml_hashes()
        if self.site.config.tuning.patroni.dcs == "etcd":
            async with ctx.phase("etcd on the db servers"):
                etcd_plans = {h: without_containers(p, layout.PATRONI_CONTAINER) for h, p in db_plans.items()}
                # A new etcd cluster needs its members together to form; a running one is changed one
                # member at a time, so the DCS keeps its quorum and Patroni never demotes the leader.
                running = not ctx.dry_run and await self._etcd_healthy()
                for batch in ([[h] for h in self.db] if running else [self.db]):
                    if await ctx.converge(batch, etcd_plans) or not running:
                        await ctx.wait_for("etcd quorum (3 members healthy)", self._etcd_healthy, timeout=90)
        states = await api.cluster_states(self.site)
        leader = api.leader_of(states)
        if ctx.dry_run and leader is None:
            async with ctx.phase("db servers (dry-run: no cluster yet, later phases need one)"):
                await ctx.converge(self.db, db_plans)
                await ctx.converge(self.lbs, {h: self.plans[h] for h in self.lbs})
            return
        if leader is None:
            await self._bootstrap(db_plans)
        else:
            await self._update(db_plans, leader.hostname)
        async with ctx.phase("Patroni settings (POST /reload, PATCH /config)"):
            await self._reload_changed(before)
            await self._patch_dcs()
            leader_host = await self._leader()
        async with ctx.phase("application role and database"):
            await ensure_app_role(ctx, leader_host)
        async with ctx.phase("HAProxy and PgBouncer on the haproxy servers"):
            await self._load_balancers(leader_host)
        async with ctx.phase("the ways in through the load balancer"):
            await ctx.wait_for("5432 on the leader, 5433 on a replica, 6432 through PgBouncer, via the LB VIP",
                               self._lb_paths_ok, timeout=WRITE_PATH_TIMEOUT_S)

    # --- db servers -----------------------------------------------------------------------
    async def _bootstrap(self, db_plans: Plans) -> None:
        """No leader yet. The DCS needs a quorum, so every node starts; only the first has a bootstrap
        section (it initialises the cluster), the others wait for it and clone it with pg_basebackup."""
        first = self.db[0]
        async with self.ctx.phase(f"start Patroni on the db servers; {first} bootstraps the cluster"):
            await self.ctx.converge([first], db_plans)
            await self.ctx.converge(self.db[1:], db_plans)
            # A fresh cluster: `first` leads. Containers that were stopped: whoever Patroni elects.
            await self.ctx.wait_for("one Patroni leader", self._has_leader, timeout=LEADER_TIMEOUT_S)
        async with self.ctx.phase("wait for the replicas to stream"):
            await self.ctx.wait_for("1 leader + streaming replicas", self._cluster_healthy, timeout=CLUSTER_TIMEOUT_S)

    async def _update(self, db_plans: Plans, leader: str) -> None:
        """Replicas one at a time, the current leader last: whoever leads now keeps leading."""
        for host in [h for h in self.db if h != leader] + [leader]:
            if host == leader and not self.ctx.dry_run and await will_recreate(
                    self.ctx, host, db_plans[host], layout.PATRONI_CONTAINER):
                async with self.ctx.phase(f"switch the leader away from {host} before recreating it"):
                    await self._switchover(host)
            async with self.ctx.phase(f"converge {host}" + (" (leader)" if host == leader else "")):
                if await self.ctx.converge([host], db_plans):
                    await self.ctx.wait_for("1 leader + streaming replicas", self._cluster_healthy,
                                            timeout=CLUSTER_TIMEOUT_S)

    async def _switchover(self, leader: str) -> None:
        """A planned switchover (~2 s of writes) instead of killing the leader (~20 s, the ttl)."""
        ip = str(self.site.server(leader).private_ip)
        status, body = await api.call(ip, "/switchover", method="POST", site=self.site, timeout=60,
                                      body={"leader": leader})
        if status != 200:
            raise OperationFailed(f"switchover away from {leader} refused ({status}): {body}", host=leader,
                                  module=layout.MODULE, step="switchover")
        self.ctx.changed(leader, "POST /switchover: leader handed over before its container is recreated")

        async def moved() -> bool:
            new = api.leader_of(await api.cluster_states(self.site))
            return new is not None and new.hostname != leader and await self._cluster_healthy()

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
        if not self.lbs:
            return
        creds = self.site.credentials[layout.MODULE]
        verifier = await scram_verifier(self.ctx, leader, creds["POSTGRES_APP_USER"])
        lb_plans = {h: self.plans[h] for h in self.lbs}
        if verifier is None:
            if not self.ctx.dry_run:
                raise OperationFailed("the application role has no SCRAM password", host=leader,
                                      module=layout.MODULE, step="pgbouncer userlist")
        else:
            owner = await image_owner(self.ctx, self.lbs[0], self.site.image("pgbouncer"))
            secret = FileSpec(layout.host_paths(self.site).userlist, userlist(creds["POSTGRES_APP_USER"], verifier),
                              mode=0o600, owner=owner, secret=True)
            lb_plans = {h: HostPlan(h, list(p.directories), [*p.files, secret], list(p.containers))
                        for h, p in lb_plans.items()}
        # One haproxy server at a time: the load balancer keeps the other one while this one restarts.
        for host in self.lbs:
            await self.ctx.converge([host], lb_plans)
            await self.ctx.wait_for(f"HAProxy on {host}: exactly one UP write server, the leader",
                                    lambda host=host: self._haproxy_settled(host), timeout=WRITE_PATH_TIMEOUT_S)

    # --- gates ------------------------------------------------------------------------------
    async def _has_leader(self) -> bool:
        return api.leader_of(await api.cluster_states(self.site)) is not None

    async def _cluster_healthy(self) -> bool:
        return api.healthy(await api.cluster_states(self.site), self.max_lag)

    async def _leader(self) -> str:
        leader = api.leader_of(await api.cluster_states(self.site))
        if leader is None:
            raise OperationFailed("no single Patroni leader", module=layout.MODULE, step="find leader",
                                  resume="check `patronictl list` in the patroni container of a db server")
        return leader.hostname

    async def _etcd_healthy(self) -> bool:
        async def one(ip: str) -> bool:
            try:
                status, body = await api.call(ip, "/health", port=layout.ETCD_CLIENT_PORT)
            except (OSError, TimeoutError):
                return False
            return status == 200 and isinstance(body, dict) and str(body.get("health")) == "true"
        results = await asyncio.gather(*(one(str(s.private_ip)) for s in self.site.with_role("db")))
        return all(results)

    async def _haproxy_settled(self, host: str) -> bool:
        """A (re)started HAProxy counts every server UP until its first check: wait for the checks."""
        leader = api.leader_of(await api.cluster_states(self.site))
        up = await haproxy_write_up(self.site, str(self.site.server(host).private_ip))
        return leader is not None and up == [leader.hostname]

    async def _lb_paths_ok(self) -> bool:
        """The LB and HAProxy mark backends UP only after `rise` checks: wait for all three ports."""
        vip = lb_vip(self.site)
        wanted = {layout.WRITE_PORT: False, layout.READ_PORT: True, layout.PGBOUNCER_PORT: False}
        try:
            for port, recovery in wanted.items():
                if await asyncio.to_thread(connect_once, self.site, vip, port) is not recovery:
                    return False
        except psycopg.Error:
            return False
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

