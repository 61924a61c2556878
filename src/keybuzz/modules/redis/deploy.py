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

from keybuzz.contract import DeployContext
from keybuzz.contract.rolling import roll
from keybuzz.errors import OperationFailed
from keybuzz.haproxy import one_up_problems
from keybuzz.modules.redis import client, layout, state
from keybuzz.modules.redis.settings import SentinelTuning
from keybuzz.poll import NotYet
from keybuzz.render import Plans

NODE_TIMEOUT_S = 60
SENTINEL_TIMEOUT_S = 60
HAPROXY_TIMEOUT_S = 60
SWITCHOVER_PAUSE_MS = 10000  # writes on the old master stay paused until it restarts


class RedisDeploy:
    """One deploy run over a rendered plan."""

    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site, self.plans = ctx, ctx.site, plans
        self.nodes = [s.hostname for s in layout.redis_servers(self.site)]
        self.lbs = [s.hostname for s in self.site.with_role("haproxy")]

    async def run(self) -> None:
        ctx = self.ctx
        agreed = "all Sentinels agree on the master and see every replica and Sentinel"
        servers_only = {h: self.plans[h].with_containers(layout.SERVER_CONTAINER) for h in self.nodes}
        current = await self._current_master()
        if current is None:
            # No master running: a new cluster (redis-01 rendered as master, the others replicas of
            # it), or a cold start over kept data, where each boot guard restores the node's last
            # role. Every server answers before any Sentinel starts: Sentinels started from their
            # kept state next to a master still starting declare it down after down-after-ms (1 s)
            # and fail over for nothing. Then the Sentinels demote a node that wrongly claims to be
            # master (e.g. stopped before Sentinel reconfigured it).
            async with ctx.phase("redis-server on every node (no master running)"):
                await ctx.converge(self.nodes, servers_only)
                await ctx.wait_for("every redis-server answering", self._servers_answer, timeout=NODE_TIMEOUT_S)
            async with ctx.phase("Sentinel on every node"):
                await ctx.converge(self.nodes, self.plans)
                await ctx.wait_for("one master, replicas linked", self._replication_ok,
                                   timeout=NODE_TIMEOUT_S + SENTINEL_TIMEOUT_S)
        else:
            # A Sentinel that still names an older master (its server was down during a failover)
            # must have caught up before anything restarts: a switchover asked then can stall.
            await ctx.wait_for("the answering Sentinels name one master", self._sentinels_agree,
                               timeout=SENTINEL_TIMEOUT_S)
            # One replica at a time: with min-replicas-to-write 1 the master refuses writes
            # (NOREPLICAS) while no replica is connected. The master last, handed over first
            # when its container must be recreated.
            await roll(ctx, self.nodes, servers_only, primary=current, container=layout.SERVER_CONTAINER,
                       hand_over=self._switchover, settled=lambda host: self._replication_ok(), gate_unchanged=True,
                       what=lambda host: "one master, replicas linked", timeout=NODE_TIMEOUT_S,
                       label="redis-server on")
            # Then its Sentinels, one at a time: HAProxy lets clients reach the master only while a
            # majority of them names it.
            await roll(ctx, self.nodes, self.plans, settled=lambda host: self._sentinels_ok(),
                       what=lambda host: agreed, timeout=SENTINEL_TIMEOUT_S, label="Sentinel on")
        async with ctx.phase("Sentinel settings (SENTINEL SET)"):  # gated on the Sentinels agreeing, either way
            await ctx.wait_for(agreed, self._sentinels_ok, timeout=SENTINEL_TIMEOUT_S)
            await self._apply_sentinel_tuning()
        # One HAProxy at a time: the load balancer keeps the other one while this one restarts.
        await roll(ctx, self.lbs, self.plans, settled=self._haproxy_ok, gate_unchanged=True,
                   what=lambda host: f"exactly one UP server, the master, in {host}", timeout=HAPROXY_TIMEOUT_S,
                   label="HAProxy on")
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
        for lb_host, up in (await state.haproxy_up(self.site)).items():
            if isinstance(up, str) or hostname in up:
                raise NotYet(f"{lb_host}: {up if isinstance(up, str) else f'{hostname} still UP'}")
        return True

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

    async def _servers_answer(self) -> bool:
        silent = [f"{n.hostname} ({n.error})" for n in await state.nodes(self.site) if not n.reachable]
        if silent:
            raise NotYet("not answering: " + ", ".join(silent))
        return True

    async def _replication_ok(self) -> bool:
        problems = state.replication_problems(await state.nodes(self.site))
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _sentinels_agree(self) -> bool:
        views = [v for v in await state.sentinels(self.site) if v.reachable]
        if len({v.master_ip for v in views}) > 1:
            raise NotYet("; ".join(f"sentinel {v.hostname} names {layout.hostname_of(self.site, v.master_ip)}"
                                   for v in views))
        return True

    async def _sentinels_ok(self) -> bool:
        masters = [n.hostname for n in await state.nodes(self.site) if n.reachable and n.role == "master"]
        if len(masters) != 1:
            raise NotYet(f"{len(masters)} nodes say role:master ({', '.join(masters) or 'none'})")
        problems = state.sentinel_problems(self.site, await state.sentinels(self.site),
                                           str(self.site.server(masters[0]).private_ip))
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _apply_sentinel_tuning(self) -> None:
        """sentinel.conf is Sentinel's own: a changed down-after/failover-timeout is applied live."""
        tuning = self.site.settings(SentinelTuning)
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
        problems = one_up_problems(await state.haproxy_up(self.site, hostname),
                                   layout.hostname_of(self.site, master) if master else None)
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _vip_ok(self) -> bool:
        info = await client.info(str(layout.vip(self.site)), self.site.secret("redis", "REDIS_PASSWORD"))
        if info.get("role") != "master":
            raise NotYet(f"the VIP reached a node with role {info.get('role')}")
        return True


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    await RedisDeploy(ctx, plans).run()
