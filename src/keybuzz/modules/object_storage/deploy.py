"""Ordered, health-gated deploy of the object storage module.

SeaweedFS, no master leader running (new cluster, or a cold start over kept data): the masters of
every storage server together (raft elects once a majority runs) -> the volume servers, registered
with the leader -> the filers -> the S3 gateways and peer watches. A running cluster (also after a
failover): one storage server at a time, the leader's last, its leadership handed over first when its
master must be recreated; each server gated on the whole cluster being healthy again. Then the
buckets, created once; then the HAProxy servers one at a time, each gated on every gateway UP; then
the application key through the load balancer. A re-run with nothing changed is 0 changes, 0 restarts.

MinIO (not exercised here: no MinIO binary is reachable from keybuzz's lab): every server together
(distributed MinIO waits for its peers), gated on each node's liveness endpoint, then the same buckets
and HAProxy steps.
"""

from __future__ import annotations

import asyncio

from keybuzz.contract import DeployContext
from keybuzz.contract.rolling import roll
from keybuzz.errors import OperationFailed
from keybuzz.modules.object_storage import layout, s3, state
from keybuzz.poll import NotYet
from keybuzz.render import Plans

CLUSTER_TIMEOUT_S = 120
HAPROXY_TIMEOUT_S = 60
TRANSFER_TIMEOUT_S = 30


class StorageDeploy:
    """One deploy run over a rendered plan."""

    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site, self.plans = ctx, ctx.site, plans
        self.nodes = [s.hostname for s in layout.storage_servers(self.site)]
        self.lbs = [s.hostname for s in self.site.with_role("haproxy")]

    async def run(self) -> None:
        if layout.settings(self.site).backend == "seaweedfs":
            await self._seaweedfs()
            if self.ctx.changed_hosts():  # a leader this run moved or restarted warms up: wait for it here
                async with self.ctx.phase("writes accepted"):
                    await self.ctx.wait_for("the master leader handing out file ids (after a leader change "
                                            "SeaweedFS waits 15 s for every volume server)", self._assigns,
                                            timeout=CLUSTER_TIMEOUT_S)
        else:
            await self._minio()
        async with self.ctx.phase("buckets (created once)"):
            await self._ensure_buckets()
        # One HAProxy at a time: the load balancer keeps the other one while this one restarts.
        await roll(self.ctx, self.lbs, self.plans, settled=self._haproxy_ok, gate_unchanged=True,
                   what=lambda host: f"every S3 gateway UP in {host}", timeout=HAPROXY_TIMEOUT_S, label="HAProxy on")
        if self.lbs and layout.vip_url(self.site):
            async with self.ctx.phase("through the load balancer"):
                await self.ctx.wait_for("the application key listing its buckets through the load balancer VIP",
                                        self._vip_ok, timeout=HAPROXY_TIMEOUT_S)

    async def _seaweedfs(self) -> None:
        ctx = self.ctx
        leader = await state.leader(self.site)
        if leader is None:
            phases = (("masters", (layout.MASTER,), "a master leader named by every master", self._masters_ok),
                      ("volume servers", (layout.VOLUME,), "every volume server registered with the leader",
                       self._volumes_ok),
                      ("filers, S3 gateways and peer watches", (layout.FILER, layout.GATEWAY, layout.PEERWATCH),
                       "every master, volume server, filer and S3 gateway healthy", self._cluster_ok))
            running: list[str] = []
            for label, names, what, gate in phases:
                running += names
                async with ctx.phase(f"SeaweedFS {label} on every storage server"
                                     + ("" if len(running) > 1 else " (no master leader running)")):
                    await ctx.converge(self.nodes, {h: self.plans[h].with_containers(*running) for h in self.nodes})
                    await ctx.wait_for(what, gate, timeout=CLUSTER_TIMEOUT_S)
            return
        await roll(ctx, self.nodes, self.plans, primary=leader, container=layout.MASTER, hand_over=self._transfer,
                   settled=lambda host: self._cluster_ok(), what=lambda host: "the storage cluster healthy again",
                   timeout=CLUSTER_TIMEOUT_S, label="SeaweedFS on")

    async def _minio(self) -> None:
        async with self.ctx.phase("MinIO on every storage server (distributed: they start together)"):
            await self.ctx.converge(self.nodes, self.plans)
            await self.ctx.wait_for("every MinIO node live", self._minio_ok, timeout=CLUSTER_TIMEOUT_S)

    async def _transfer(self, host: str) -> None:
        """A planned leadership transfer, so the leader's master is a follower when it restarts."""
        server = self.site.server(host)
        argv = self.ctx.cli.exec(layout.MASTER, [layout.C_WEED, "shell", f"-master={layout.master_address(server)}"],
                                 stdin=True)
        result = await self.ctx.host(host).run(argv, stdin="cluster.raft.transferLeader\n", check=False, timeout=60)
        if "successfully transferred" not in result.stdout:
            raise OperationFailed(f"cluster.raft.transferLeader on {host} did not transfer the leadership: "
                                  f"{(result.stdout + result.stderr).strip()[-300:]}", host=host, module=layout.MODULE,
                                  step="hand over the master leadership")
        self.ctx.note(f"master leadership handed over from {host} before its restart")
        await self.ctx.wait_for("another master leader", lambda: self._leader_moved(host), timeout=TRANSFER_TIMEOUT_S)
        await self.ctx.wait_for("every volume server registered with the new leader", self._volumes_ok,
                                timeout=TRANSFER_TIMEOUT_S)

    async def _leader_moved(self, old: str) -> bool:
        now = await state.leader(self.site)
        if now in (None, old):
            raise NotYet(f"the masters name {now or 'no leader'}")
        return True

    async def _masters_ok(self) -> bool:
        views = await state.master_views(self.site)
        if state.agreed_leader(views) is None or any(not v.leader for v in views):
            raise NotYet("; ".join(f"{v.hostname}: {v.leader or v.error or 'no leader'}" for v in views))
        return True

    async def _volumes_ok(self) -> bool:
        leader = await state.leader(self.site)
        if leader is None:
            raise NotYet("no master leader")
        known = await state.registered_nodes(self.site, leader)
        missing = [h for h in self.nodes if h not in known]
        if missing:
            raise NotYet(f"not registered with {leader}: {', '.join(missing)}")
        return True

    async def _cluster_ok(self) -> bool:
        problems = await state.cluster_problems(self.site)
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _assigns(self) -> bool:
        leader = await state.leader(self.site)
        problem = await state.assign_problem(self.site, leader) if leader else "no master leader"
        if problem:
            raise NotYet(problem)
        return True

    async def _minio_ok(self) -> bool:
        problems = await state.minio_problems(self.site)
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _ensure_buckets(self) -> None:
        """Create the buckets that do not exist yet, through one storage server (the LB may not run yet).
        A bucket removed from keybuzz.yaml is kept: its objects are data."""
        server = layout.storage_servers(self.site)[0]
        if self.ctx.dry_run:
            self.ctx.note(f"would create the missing buckets among {', '.join(layout.buckets(self.site))}")
            return
        conn = s3.admin(self.site, layout.gateway_url(self.site, server), timeout=10)
        existing = await asyncio.to_thread(s3.bucket_names, conn)
        for bucket in layout.buckets(self.site):
            if bucket not in existing:
                await asyncio.to_thread(conn.create_bucket, Bucket=bucket)
                self.ctx.changed(server.hostname, f"bucket {bucket} created")

    async def _haproxy_ok(self, host: str) -> bool:
        problems = state.all_up_problems(self.site, await state.haproxy_up(self.site, host))
        if problems:
            raise NotYet("; ".join(problems))
        return True

    async def _vip_ok(self) -> bool:
        conn = s3.application(self.site, str(layout.vip_url(self.site)))
        names = await asyncio.to_thread(s3.bucket_names, conn)
        wanted = sorted(layout.settings(self.site).buckets)
        if not set(wanted) <= set(names):
            raise NotYet(f"the application key lists {', '.join(names) or 'no bucket'} (want {', '.join(wanted)})")
        return True


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    await StorageDeploy(ctx, plans).run()
