"""Ordered, health-gated deploy of the RabbitMQ module.

No node running (a new cluster, or all nodes stopped by a power loss): every node starts at once,
as the operators of RabbitMQ advise: a node waits for its peers' tables, so nodes started one by
one wait on each other. With `--force-boot`, typed by the operator, the stopped nodes boot from
their own data without waiting for peers that will not come back. A running cluster changes one
node at a time, each stopped only when `rabbitmq-upgrade await_online_quorum_plus_one` says its
quorum queues keep a majority plus one without it, and each waited for until the cluster and its
queues are whole again. A node whose data folder is gone is forgotten by the others first and
rejoins as a new member; its quorum queue memberships are grown back.
"""

from __future__ import annotations

import asyncio

import pika

from keybuzz.contract import DeployContext
from keybuzz.contract.context import file_sha256
from keybuzz.contract.rolling import roll
from keybuzz.errors import OperationFailed
from keybuzz.haproxy import up_by_haproxy
from keybuzz.modules.rabbitmq import api, client, layout, lb
from keybuzz.poll import NotYet, describe
from keybuzz.remote.actions import empty_file_argv
from keybuzz.render import Plans

FORMATION_TIMEOUT_S = 300  # nodes wait up to 5 minutes for their peers' tables
NODE_TIMEOUT_S = 180
HAPROXY_TIMEOUT_S = 60
CHECK_QUEUE = "keybuzz.check"


async def rabbitmqctl(ctx: DeployContext, hostname: str, *args: str, tool: str = "rabbitmqctl",
                      timeout: float = 120, check: bool = True) -> str:
    """A CLI tool inside the node's container, as the rabbitmq user (its HOME holds the cookie)."""
    argv = ctx.cli.exec(layout.SERVER_CONTAINER, [tool, *args], user=layout.IMAGE_USER)
    result = await ctx.host(hostname).run(argv, check=False, timeout=timeout)
    if check and not result.ok:
        raise OperationFailed(f"{tool} {' '.join(args)} on {hostname} failed: "
                              f"{(result.stderr or result.stdout).strip()[-300:]}", host=hostname,
                              module=layout.MODULE, step=tool)
    return result.stdout


class RabbitmqDeploy:
    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site, self.plans = ctx, ctx.site, plans
        self.nodes = [s.hostname for s in layout.nodes(self.site)]
        self.lbs = [s.hostname for s in self.site.with_role("haproxy")]
        self.paths = layout.host_paths(self.site)
        self.whole = f"{len(self.nodes)} running nodes, no partition, no alarm"

    async def run(self) -> None:
        ctx = self.ctx
        definitions_before = await self._definitions_hashes()
        running = [v.hostname for v in await api.views(self.site) if v.reachable]
        if not running:
            async with ctx.phase("RabbitMQ on every node at once (no node running)"):
                if layout.MODULE in ctx.force_boot:
                    await self._force_boot()
                await ctx.converge(self.nodes, self.plans)
                await ctx.wait_for(self.whole, self._cluster_ok,
                                   timeout=FORMATION_TIMEOUT_S, interval=2)
        else:
            for host in self.nodes:
                if host not in running and not ctx.dry_run and not await self._has_data(host):
                    await self._forget(host, running)
            await roll(ctx, self.nodes, self.plans, settled=lambda host: self._cluster_ok(),
                       before_recreate=self._safe_to_stop, what=lambda host: self.whole,
                       timeout=NODE_TIMEOUT_S, label="RabbitMQ on")
        async with ctx.phase("users, vhost and permissions (definitions)"):
            if ctx.dry_run and not running:  # nothing to ask: the management API starts with the nodes
                ctx.note("dry-run: no node runs yet: at their first start the nodes import definitions.json "
                         "(users, vhost, permissions, policies); then the guest user is removed")
            else:
                await self._import_changed(definitions_before)
                await self._remove_guest()
                await self._grow_quorum_queues()
        await roll(ctx, self.lbs, self.plans, settled=self._haproxy_ok, gate_unchanged=True,
                   what=lambda host: f"every healthy node UP in {host}", timeout=HAPROXY_TIMEOUT_S, label="HAProxy on")
        if self.lbs and layout.vip(self.site):
            async with ctx.phase("through the load balancer"):
                await ctx.wait_for("a confirmed publish through the VIP", self._vip_ok, timeout=HAPROXY_TIMEOUT_S)

    # --- nodes -------------------------------------------------------------------------------------------
    def _node_dir(self, host: str) -> str:
        """The node's own database folder (RabbitMQ's data_dir: mnesia/rabbit@host)."""
        return f"{self.paths.data}/mnesia/{layout.node_name(self.site.server(host))}"

    async def _has_data(self, host: str) -> bool:
        result = await self.ctx.host(host).run(["test", "-d", self._node_dir(host)], check=False, timeout=30)
        return result.ok

    async def _forget(self, host: str, running: list[str]) -> None:
        """A node whose data is gone is a new member: the others forget its old identity first."""
        node = layout.node_name(self.site.server(host))
        async with self.ctx.phase(f"forget {host}'s old membership (its data folder is gone)"):
            members = await rabbitmqctl(self.ctx, running[0], "cluster_status", "--formatter", "json")
            if node in members:  # a node that never joined has nothing to forget
                await rabbitmqctl(self.ctx, running[0], "forget_cluster_node", node)
                self.ctx.changed(running[0], f"forget_cluster_node {node}: it rejoins as a new member")

    async def _force_boot(self) -> None:
        """The operator's choice: each stopped node boots from its own data, not waiting for peers."""
        for host in self.nodes:
            if await self._has_data(host):  # RabbitMQ's own marker, what `rabbitmqctl force_boot` writes
                await self.ctx.host(host).run(empty_file_argv(f"{self._node_dir(host)}/force_load"), stdin="",
                                              timeout=30)
                self.ctx.changed(host, "force boot: the node will not wait for its peers' tables")

    async def _safe_to_stop(self, host: str) -> None:
        """Wait until stopping this node keeps every quorum queue at a majority plus one (a node that
        is not running has nothing to hand over)."""
        server = self.site.server(host)
        if not (await api.node_view(self.site, host, str(server.private_ip))).reachable:
            return
        await rabbitmqctl(self.ctx, host, "await_online_quorum_plus_one", "-t", "120", tool="rabbitmq-upgrade",
                          timeout=180)

    async def _cluster_ok(self) -> bool:
        problems = api.cluster_problems(self.site, await api.views(self.site))
        if problems:
            raise NotYet("; ".join(problems))
        return True

    # --- definitions -------------------------------------------------------------------------------------
    async def _definitions_hashes(self) -> dict[str, str]:
        hashes = await asyncio.gather(*(file_sha256(self.ctx, h, self.paths.definitions) for h in self.nodes))
        return dict(zip(self.nodes, hashes, strict=True))

    async def _import_changed(self, before: dict[str, str]) -> None:
        """Boots import the definitions themselves; a file changed under running nodes is imported live."""
        if self.ctx.dry_run:
            return
        after = await self._definitions_hashes()
        changed = [h for h in self.nodes if before[h] and before[h] != after[h]]
        if changed:
            await rabbitmqctl(self.ctx, changed[0], "import_definitions", layout.C_DEFINITIONS)
            self.ctx.changed(changed[0], "definitions.json changed: imported into the running cluster")

    async def _remove_guest(self) -> None:
        ip = str(layout.nodes(self.site)[0].private_ip)
        status, _ = await api.call(self.site, ip, "/users/guest")
        if status == 200:
            self.ctx.changed(self.nodes[0], "user guest removed")
            if not self.ctx.dry_run:
                await api.call(self.site, ip, "/users/guest", method="DELETE")

    async def _short_queues(self) -> dict[str, list[str]]:
        """Quorum queues by name -> the nodes they have no member on (a node back as a new member)."""
        ip = str(layout.nodes(self.site)[0].private_ip)
        status, queues = await api.call(self.site, ip, "/queues?columns=name,vhost,type,members")
        if status != 200 or not isinstance(queues, list):
            raise NotYet(f"/api/queues answered {status}")
        wanted = [layout.node_name(s) for s in layout.nodes(self.site)]
        return {f"{q.get('vhost')}/{q.get('name')}": missing for q in queues if q.get("type") == "quorum"
                if (missing := [n for n in wanted if n not in (q.get("members") or [])])}

    async def _grow_quorum_queues(self) -> None:
        """Quorum queues with fewer members than nodes grow back onto every node, until they have.
        A node that just joined can refuse a first grow (its queue processes are still starting)."""
        short = await self._short_queues()
        if not short:
            return
        missing = sorted({n for nodes in short.values() for n in nodes})
        for node in missing:
            self.ctx.changed(layout.hostname_of(self.site, node), f"quorum queues grown onto {node}")
        if self.ctx.dry_run:
            return

        async def grown() -> bool:
            left = await self._short_queues()
            if not left:
                return True
            for node in sorted({n for nodes in left.values() for n in nodes}):
                await rabbitmqctl(self.ctx, layout.hostname_of(self.site, node), "grow", node, "all",
                                  tool="rabbitmq-queues")
            raise NotYet(f"{len(left)} quorum queue(s) short of members, e.g. {next(iter(left))}")

        await self.ctx.wait_for("every quorum queue with a member on every node", grown, timeout=NODE_TIMEOUT_S,
                                interval=2)

    # --- the ways in -------------------------------------------------------------------------------------
    async def _haproxy_ok(self, host: str) -> bool:
        """Every node that is a healthy member is UP in this HAProxy, and no other."""
        ip = str(self.site.server(host).private_ip)
        up = (await up_by_haproxy({host: ip}, layout.stats_port(self.site), lb.BACKEND))[host]
        if isinstance(up, str):
            raise NotYet(f"{host}: {up}")
        healthy = sorted(v.hostname for v in await api.views(self.site) if v.reachable)
        if sorted(up) != healthy:
            raise NotYet(f"{host}: UP {', '.join(up) or 'none'}, healthy members {', '.join(healthy) or 'none'}")
        return True

    async def _vip_ok(self) -> bool:
        def publish() -> None:
            connection = client.connect(self.site, str(layout.vip(self.site)))
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                client.declare_quorum_queue(channel, CHECK_QUEUE)
                channel.basic_publish("", CHECK_QUEUE, b"deploy", pika.BasicProperties(delivery_mode=2),
                                      mandatory=True)
                channel.queue_purge(CHECK_QUEUE)
            finally:
                connection.close()

        try:
            await asyncio.to_thread(publish)
        except Exception as exc:  # pika's errors: not there yet
            raise NotYet(describe(exc)) from None
        return True


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    await RabbitmqDeploy(ctx, plans).run()
