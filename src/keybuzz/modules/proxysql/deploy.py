"""Deploy of the proxysql servers: one at a time, each gated on a query through it reaching the one
Galera writer, so lb-mariadb always keeps a working proxy."""

from __future__ import annotations

import asyncio

from keybuzz.contract import DeployContext
from keybuzz.contract.rolling import roll
from keybuzz.modules.proxysql import layout, probe
from keybuzz.poll import NotYet, describe
from keybuzz.render import Plans

PROXY_TIMEOUT_S = 60


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    site = ctx.site

    async def serves_at(address: str) -> bool:
        try:
            node, _ = await asyncio.to_thread(probe.who, site, address)
        except Exception as exc:  # PyMySQL's errors: not serving yet
            raise NotYet(f"{address}:{layout.CLIENT_PORT}: {describe(exc)}") from None
        return bool(node)

    await roll(ctx, [s.hostname for s in layout.proxies(site)], plans,
               settled=lambda host: serves_at(str(site.server(host).private_ip)), gate_unchanged=True,
               what=lambda host: f"a query through {host}:{layout.CLIENT_PORT} reaching the Galera writer",
               timeout=PROXY_TIMEOUT_S, label="proxy on")
    lb = site.config.load_balancer_for(layout.CLIENT_PORT)
    if lb is not None:  # the load balancer has to see the proxies serving too
        async with ctx.phase("through the load balancer"):
            await ctx.wait_for(f"a query through {lb.name} {lb.vip}:{layout.CLIENT_PORT}",
                               lambda: serves_at(str(lb.vip)), timeout=PROXY_TIMEOUT_S)
