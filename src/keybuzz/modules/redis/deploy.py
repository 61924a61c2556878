"""Ordered, health-gated deploy of the Redis module.

New cluster: redis-01 as master -> the replicas linked to it -> the Sentinels agreeing -> HAProxy
with exactly the master UP. Existing cluster (also after a failover): replicas first, the
current master last (handed over with SENTINEL FAILOVER first when its container must be
recreated), and nothing that would point the cluster back at redis-01: the role of a
node is decided by the boot guard from the Sentinels at every start, and sentinel.conf is
Sentinel's own. A re-run with nothing changed is 0 changes and 0 restarts.
"""

from __future__ import annotations

import redis

from keybuzz.errors import OperationFailed
from keybuzz.modules.base import DeployContext
from keybuzz.modules.common import will_recreate
from keybuzz.modules.redis import client, layout, state
from keybuzz.render import HostPlan, Plans

NODE_TIMEOUT_S = 60
SENTINEL_TIMEOUT_S = 60
HAPROXY_TIMEOUT_S = 60
SWITCHOVER_PAUSE_MS = 10000  # writes on the old master stay paused until it restarts


def only_containers(plan: HostPlan, *names: str) -> HostPlan:
    """The host's directories and files with only the named containers."""
    return HostPlan(plan.hostname, list(plan.directories), list(plan.files),
                    [c for c in plan.containers if c.name in names])


class RedisDeploy:
    """One deploy run over a rendered plan."""

    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site, self.plans = ctx, ctx.site, plans
        self.nodes = [s.hostname for s in layout.redis_servers(self.site)]
        self.lbs = [s.hostname for s in self.site.with_role("haproxy")]

    async def run(self) -> None:
        ctx = self.ctx
        servers_only = {h: only_containers(self.plans[h], layout.SERVER_CONTAINER) for h in self.nodes}
        current = await self._current_master()
        if current is None:
            # No master running: a new cluster (redis-01 rendered as master, the others replicas of
            # it), or a cold start over kept data, where each boot guard restores the node's last
            # role and the Sentinels, from their kept state, demote a node that wrongly claims to be
            # master (e.g. stopped before Sentinel reconfigured it). Servers and Sentinels together.
            async with ctx.phase("redis-server and Sentinel on every node (no master running)"):
                await ctx.converge(self.nodes, {h: self.plans[h] for h in self.nodes})
                await ctx.wait_for("one master, replicas linked", self._replication_ok,
                                   timeout=NODE_TIMEOUT_S + SENTINEL_TIMEOUT_S)
        else:
            others = [h for h in self.nodes if h != current]
            # One replica at a time: with min-replicas-to-write 1 the master refuses writes
            # (NOREPLICAS) while no replica is connected.
            for replica in others:
                async with ctx.phase(f"redis-server on {replica} (replica)"):
                    await ctx.converge([replica], servers_only)
                    await ctx.wait_for("replicas linked to the master", self._replication_ok,
                                       timeout=NODE_TIMEOUT_S)
            if not ctx.dry_run and await will_recreate(ctx, current, self.plans[current], layout.SERVER_CONTAINER):
                async with ctx.phase(f"switch the master away from {current} before restarting it"):
                    await self._switchover(current)
            async with ctx.phase(f"redis-server on {current} (the master before this run, last)"):
                await ctx.converge([current], servers_only)
                await ctx.wait_for("one master, replicas linked", self._replication_ok, timeout=NODE_TIMEOUT_S)
        async with ctx.phase("Sentinels"):
            agreed = "all Sentinels agree on the master and see every replica and Sentinel"
            # A new cluster starts its Sentinels together; an existing one restarts them one at a time,
            # since HAProxy lets clients reach the master only while a majority of them names it.
            for batch in ([[h] for h in self.nodes] if current is not None else [self.nodes]):
                if await ctx.converge(batch, {h: self.plans[h] for h in batch}):
                    await ctx.wait_for(agreed, self._sentinels_ok, timeout=SENTINEL_TIMEOUT_S)
            await ctx.wait_for(agreed, self._sentinels_ok, timeout=SENTINEL_TIMEOUT_S)
            await self._apply_sentinel_tuning()
        # One HAProxy at a time: the load balancer keeps the other one while this one restarts.
        for lb_host in self.lbs:
            async with ctx.phase(f"HAProxy on {lb_host}"):
                await ctx.converge([lb_host], {lb_host: self.plans[lb_host]})
                await ctx.wait_for(f"exactly one UP server, the master, in {lb_host}",
                                   lambda host=lb_host: self._haproxy_ok(host), timeout=HAPROXY_TIMEOUT_S)
        if self.lbs and layout.vip(self.site):
            async with ctx.phase("through the load balancer"):
                await ctx.wait_for("the master reached through the load balancer VIP", self._vip_ok,
                                   timeout=HAPROXY_TIMEOUT_S)

    async def _current_master(self) -> str | None:
        """The master of an existing cluster (Sentinels' majority, else the one node saying master)."""
        master_ip = await state.sentinels_master(self.site)
        if master_ip is None:
            masters = [n.ip for n in await state.nodes(self.site) if n.reachable and n.role == "master"]
            master_ip = masters[0] if len(masters) == 1 else None
        return layout.hostname_of(self.site, master_ip) if master_ip else None

    async def _switchover(self, master: str) -> None:
        """A planned failover so the master is a replica when it restarts (restarting a master
        lets Sentinel fail over in the middle of it). Writes on the master are paused first and
        the replicas caught up: SENTINEL FAILOVER alone loses the writes the old master still
        takes before it is demoted. Paused clients get an error when the old master restarts
        right after, never an acknowledgement."""
        password = self.site.secret("redis", "REDIS_PASSWORD")
        sentinel_password = self.site.secret("redis", "REDIS_SENTINEL_PASSWORD")
        ip = str(self.site.server(master).private_ip)
        await client.call(ip, layout.REDIS_PORT, password, "CLIENT", "PAUSE", str(SWITCHOVER_PAUSE_MS), "WRITE")
        await self.ctx.wait_for("replicas caught up with the paused master", lambda: self._caught_up(ip),
                                timeout=SWITCHOVER_PAUSE_MS / 2000, interval=0.05)
        errors = []
        for server in layout.redis_servers(self.site):
            try:
                await client.call(str(server.private_ip), layout.SENTINEL_PORT, sentinel_password,
                                  "SENTINEL", "FAILOVER", layout.MASTER_NAME)
                break
            except (redis.RedisError, OSError) as exc:
                errors.append(f"{server.hostname}: {exc}")
        else:
            raise OperationFailed("no Sentinel accepted SENTINEL FAILOVER: " + "; ".join(errors),
                                  module=layout.MODULE, step="switchover")
        self.ctx.note(f"switchover: {master} hands the master role over before its restart")
        await self.ctx.wait_for("another master named by the Sentinels", lambda: self._master_moved(master),
                                timeout=SWITCHOVER_PAUSE_MS / 1000, interval=0.2)
        # Demote the old master now instead of waiting ~8 s for Sentinel to convert it: its HAProxy
        # check fails at once (role:slave) and the new master, which HAProxy only brings UP once
        # the old one is DOWN, takes the clients sooner. Nothing is lost: its writes were paused
        # and every replica had caught up.
        new_ip = await state.sentinels_master(self.site)
        await client.call(ip, layout.REDIS_PORT, password, "REPLICAOF", str(new_ip), str(layout.REDIS_PORT))
        if self.lbs:  # restarted while still UP somewhere, it would answer READONLY to new clients
            await self.ctx.wait_for(f"{master} DOWN in every HAProxy", lambda: self._not_up_anywhere(master),
                                    timeout=SWITCHOVER_PAUSE_MS / 1000, interval=0.2)

    async def _not_up_anywhere(self, hostname: str) -> bool:
        return all(hostname not in up for up in (await state.haproxy_up(self.site)).values())

    async def _caught_up(self, master_ip: str) -> bool:
        """Every replica acknowledged the master's whole replication stream."""
        info = await client.info(master_ip, self.site.secret("redis", "REDIS_PASSWORD"))
        offset = int(info.get("master_repl_offset", -1))
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        expected = len(layout.redis_servers(self.site)) - 1
        return len(replicas) == expected and all(int(r.get("offset", -1)) >= offset for r in replicas)

    async def _master_moved(self, old: str) -> bool:
        master = await self._current_master()
        return master is not None and master != old and await self._is_master(master)

    async def _is_master(self, hostname: str) -> bool:
        ip = str(self.site.server(hostname).private_ip)
        node = await state.node_state(self.site, hostname, ip)
        return node.reachable and node.role == "master"

    async def _replication_ok(self) -> bool:
        states = await state.nodes(self.site)
        return not state.replication_problems(states)

    async def _sentinels_ok(self) -> bool:
        masters = [n.ip for n in await state.nodes(self.site) if n.reachable and n.role == "master"]
        if len(masters) != 1:
            return False
        return not state.sentinel_problems(self.site, await state.sentinels(self.site), masters[0])

    async def _apply_sentinel_tuning(self) -> None:
        """sentinel.conf is Sentinel's own: a changed down-after/failover-timeout is applied live."""
        tuning = self.site.config.tuning.sentinel
        wanted = {"down-after-milliseconds": tuning.down_after_ms, "failover-timeout": tuning.failover_timeout_ms}
        password = self.site.secret("redis", "REDIS_SENTINEL_PASSWORD")
        for server in layout.redis_servers(self.site):
            ip = str(server.private_ip)
            try:
                current = await client.sentinel_master(ip, password)
            except (redis.RedisError, OSError):
                if self.ctx.dry_run:  # no cluster yet: nothing to compare with
                    continue
                raise
            for key, value in wanted.items():
                if str(current.get(key)) == str(value):
                    continue
                self.ctx.changed(server.hostname, f"SENTINEL SET {key} {current.get(key)} -> {value}")
                if self.ctx.dry_run:
                    continue
                await client.call(ip, layout.SENTINEL_PORT, password, "SENTINEL", "SET", layout.MASTER_NAME,
                                  key, str(value))

    async def _haproxy_ok(self, hostname: str) -> bool:
        master = await state.sentinels_master(self.site)
        if master is None:
            return False
        want = [layout.hostname_of(self.site, master)]
        return all(up == want for up in (await state.haproxy_up(self.site, hostname)).values())

    async def _vip_ok(self) -> bool:
        vip = layout.vip(self.site)
        password = self.site.secret("redis", "REDIS_PASSWORD")
        try:
            info = await client.info(str(vip), password)
        except (redis.RedisError, OSError):
            return False
        return info.get("role") == "master"


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    await RedisDeploy(ctx, plans).run()
