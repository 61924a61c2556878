"""Failover drills of the Redis module (its drill hooks of keybuzz.contract.Module).

Every round writes through the load balancer VIP (RPUSH of an id every 100 ms, 0.5 s timeouts,
no client retries), hits the current master with the scenario's fault, and samples every
HAProxy's stats all along: `max_up_nodes` in the round's details is the largest number of
different Redis nodes UP at once in the redis backend (1 means never two masters UP).
"""

from __future__ import annotations

import asyncio
import secrets
import time

from keybuzz.contract import DrillContext, RoundPlan
from keybuzz.haproxy import one_up_problems
from keybuzz.modules.redis import layout, lb, state
from keybuzz.modules.redis.probe import RedisWriterProbe
from keybuzz.modules.redis.settings import SentinelTuning
from keybuzz.poll import NotYet, wait_until
from keybuzz.site import Site

SCENARIOS: dict[str, str] = {
    "poweroff-master": "power off the master's host (peers see silence); Sentinel fails over, HAProxy follows",
    "crash-master": "kill every process of the master's host (peers get resets)",
    "partition-master": "cut the master's host off the network, then heal it: it must rejoin as a replica",
    "isolate-master": "cut the master from the other redis servers only (replicas, Sentinels): clients and "
                      "HAProxy still reach it",
    "reboot-old-master": "power off the master, let the failover happen, then boot it while writes go on: "
                         "never two masters UP in HAProxy",
}
# Faults by preference: the lab powers hosts off; on real servers the container is stopped.
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "poweroff-master": ("poweroff", "stop"),
    "crash-master": ("crash",),
    "partition-master": ("partition",),
    "isolate-master": ("isolate",),
    "reboot-old-master": ("poweroff", "stop"),
}
FAILOVER_TIMEOUT_S = 60.0
REJOIN_TIMEOUT_S = 90.0
HEALTHY_TIMEOUT_S = 90.0
SAMPLE_INTERVAL_S = 0.2


class HaproxySampler:
    """Polls every HAProxy's stats during a round and keeps the worst it saw."""

    def __init__(self, site: Site):
        self.site = site
        self.max_up_nodes = 0  # different nodes UP at once, over all HAProxy servers
        self.max_up_per_haproxy = 0
        self.samples = 0
        self.failed_samples = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            answered = [names for names in (await state.haproxy_up(self.site)).values() if isinstance(names, list)]
            if answered:  # a restarting HAProxy does not answer: counted, sampling goes on
                self.samples += 1
                self.max_up_nodes = max(self.max_up_nodes, len({n for names in answered for n in names}))
                self.max_up_per_haproxy = max(self.max_up_per_haproxy, *(len(n) for n in answered))
            if len(answered) < len(self.site.with_role("haproxy")):
                self.failed_samples += 1
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def details(self) -> dict[str, object]:
        return {"max_up_nodes": self.max_up_nodes, "max_up_per_haproxy": self.max_up_per_haproxy,
                "haproxy_samples": self.samples, "haproxy_failed_samples": self.failed_samples}


async def master_hostname(site: Site) -> str | None:
    ip = await state.sentinels_master(site)
    return layout.hostname_of(site, ip) if ip else None


async def is_replica_of_master(site: Site, hostname: str) -> bool:
    master_ip = await state.sentinels_master(site)
    node = await state.node_state(site, hostname, str(site.server(hostname).private_ip))
    if not (master_ip and node.role == "slave" and node.link_up and node.master_ip == master_ip):
        raise NotYet(f"{hostname}: role {node.role or node.error or '-'}, master {node.master_ip or '-'}, "
                     f"link {'up' if node.link_up else 'down'}; the Sentinels name {master_ip or 'no master'}")
    return True


async def cluster_healthy(site: Site) -> bool:
    master_ip = await state.sentinels_master(site)
    if master_ip is None:
        raise NotYet("no master named by a majority of Sentinels")
    problems = state.replication_problems(await state.nodes(site))
    problems += state.sentinel_problems(site, await state.sentinels(site), master_ip)
    problems += one_up_problems(await state.haproxy_up(site), layout.hostname_of(site, master_ip))
    if problems:
        raise NotYet("; ".join(problems))
    return True


class RedisDrills:
    """Mixed into RedisModule: its drill hooks."""

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        tuning = dctx.ctx.site.settings(SentinelTuning)
        return {"down_after_ms": tuning.down_after_ms, "failover_timeout_ms": tuning.failover_timeout_ms,
                "min_replicas_to_write": tuning.min_replicas_to_write,
                "min_replicas_max_lag_s": tuning.min_replicas_max_lag_s, "quorum": layout.quorum(dctx.ctx.site),
                "haproxy_check": f"{lb.MASTER_CHECK.removeprefix('default-server ')}, WAIT 1 "
                                 f"{lb.REPLICATION_WAIT_MS} ms, Sentinel majority gate",
                "writer": "RPUSH + WAIT 1" if dctx.options.get("wait") else "RPUSH"}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        """A round starts only on a healthy cluster: one master, replicas linked, Sentinels agreeing."""
        site = dctx.ctx.site
        if layout.vip(site) is None:
            raise ValueError("no load balancer lists port 6379: the drill writes through the VIP")
        await wait_until("a healthy Redis cluster", lambda: cluster_healthy(site), timeout=HEALTHY_TIMEOUT_S,
                         interval=0.2, module=layout.MODULE)

    async def finish_drill(self, dctx: DrillContext) -> None:
        """Nothing to put back: prepare_drill only waits for a healthy cluster."""

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        site = dctx.ctx.site
        kinds = [k for k in FAULT_KINDS[scenario] if k in dctx.faults.kinds]
        if not kinds:
            raise ValueError(f"scenario {scenario} needs a fault among {', '.join(FAULT_KINDS[scenario])}; "
                             f"these servers offer {', '.join(dctx.faults.kinds)}")
        kind = kinds[0]
        await wait_until("a healthy Redis cluster", lambda: cluster_healthy(site), timeout=HEALTHY_TIMEOUT_S,
                         interval=0.2, module=layout.MODULE)
        target = await master_hostname(site)
        if target is None:
            raise ValueError("no master named by a majority of Sentinels")
        vip = str(layout.vip(site))
        key = f"keybuzz:drill:{scenario}:{number}:{secrets.token_hex(4)}"
        probe = RedisWriterProbe(vip, layout.REDIS_PORT, site.secret("redis", "REDIS_PASSWORD"), key,
                                 wait_replicas=1 if dctx.options.get("wait") else 0)
        peers = [s.hostname for s in layout.redis_servers(site) if s.hostname != target]
        sampler = HaproxySampler(site)
        rejoin: dict[str, float] = {}

        async def restore_and_rejoin() -> None:
            """Seconds from the boot (or heal) order to a connected replica of the new master."""
            started = time.monotonic()
            await dctx.faults.restore(kind, target)
            await wait_until(f"{target} back as a connected replica of the new master",
                             lambda: is_replica_of_master(site, target), timeout=REJOIN_TIMEOUT_S, interval=0.2,
                             where=target, module=layout.MODULE)
            rejoin["s"] = time.monotonic() - started

        async def inject() -> None:
            sampler.start()
            await dctx.faults.inject(kind, target, peers)
            if scenario == "reboot-old-master":
                await wait_until("a new master UP in every HAProxy", lambda: _failed_over(site, target),
                                 timeout=FAILOVER_TIMEOUT_S, interval=0.2, module=layout.MODULE)
                await restore_and_rejoin()  # while the probe keeps writing

        async def recover() -> float | None:
            try:
                if "s" not in rejoin:
                    await restore_and_rejoin()
            finally:
                await sampler.stop()
            return rejoin["s"]

        async def new_primary() -> str:
            return await master_hostname(site) or "none"

        return RoundPlan(scenario=scenario, target=target, probe=probe, inject=inject, recover=recover,
                         new_primary=new_primary, details=sampler.details)


async def _failed_over(site: Site, old: str) -> bool:
    master = await master_hostname(site)
    if master is None or master == old:
        raise NotYet(f"the Sentinels name {master or 'no master'}")
    problems = one_up_problems(await state.haproxy_up(site), master)
    if problems:
        raise NotYet("; ".join(problems))
    return True
