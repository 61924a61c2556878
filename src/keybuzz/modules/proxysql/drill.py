"""Failover drill of the proxies: the Galera writer probe through lb-mariadb while the proxy that
carries its connection is powered off; the load balancer must move clients to the other proxy."""

from __future__ import annotations

import asyncio
import time

import pymysql

from keybuzz.contract import DrillContext, RoundPlan
from keybuzz.modules.mariadb.drill import GaleraWriterProbe, vip, whole
from keybuzz.modules.proxysql import layout, probe
from keybuzz.poll import NotYet, wait_until

SCENARIOS: dict[str, str] = {
    "poweroff-proxy": "power off the proxysql server carrying the writer's connection (peers see silence)",
}
HEALTHY_TIMEOUT_S = 180.0


class ProxysqlDrills:
    """Mixed into ProxysqlModule: its drill hooks."""

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        return {"load_balancer": "lb-mariadb, TCP checks inter 1s fall 2, on-marked-down shutdown-sessions"}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        await wait_until("a whole Galera cluster", lambda: whole(dctx.ctx.site), timeout=HEALTHY_TIMEOUT_S,
                         interval=1, module=layout.MODULE)

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        site = dctx.ctx.site
        host, port = vip(site)
        writer_probe = GaleraWriterProbe(site, host, port)
        await asyncio.to_thread(writer_probe.ensure_table)
        # The probe keeps one connection: the proxy it goes through is the one to power off.
        async def through() -> str:
            try:
                return await asyncio.to_thread(writer_probe.client_address)
            except pymysql.MySQLError as exc:
                writer_probe.close()
                raise NotYet(f"no answer through the VIP: {exc}") from None

        address = await wait_until("the proxy the writer goes through", through, timeout=60, interval=0.5,
                                   module=layout.MODULE)
        target = probe.proxy_name(site, address)
        marks: dict[str, float] = {}

        async def inject() -> None:
            await dctx.faults.inject("poweroff", target)

        async def recover() -> float | None:
            await dctx.faults.restore("poweroff", target)
            marks["boot"] = time.monotonic()

            async def serves() -> bool:
                try:
                    await asyncio.to_thread(probe.who, site, str(site.server(target).private_ip))
                except Exception as exc:  # not serving yet
                    raise NotYet(f"{target}: {exc}") from None
                return True

            await wait_until(f"{target} serving again", serves, timeout=HEALTHY_TIMEOUT_S, interval=0.5,
                             where=target, module=layout.MODULE)
            return round(time.monotonic() - marks["boot"], 2)

        async def new_primary() -> str:
            _, proxy = await asyncio.to_thread(probe.who, site, host, port)
            return proxy

        return RoundPlan(scenario=scenario, target=target, probe=writer_probe, inject=inject, recover=recover,
                         new_primary=new_primary, max_outage_s=HEALTHY_TIMEOUT_S)
