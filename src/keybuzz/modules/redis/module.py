"""RedisModule: the Module contract (render, deploy, validate) and the Drillable protocol."""

from __future__ import annotations

from keybuzz.modules.base import CheckResult, DeployContext, Module
from keybuzz.modules.redis import checks, deploy, render
from keybuzz.modules.redis.drill import RedisDrills
from keybuzz.render import Plans
from keybuzz.site import Site


class RedisModule(RedisDrills, Module):
    number = 4
    name = "redis"
    title = "Redis HA (Sentinel) + HAProxy"
    roles = ("redis", "haproxy")
    credentials = ("redis",)
    own_role = "redis"

    def requirements(self, site: Site) -> list[str]:
        count = len(site.with_role("redis"))
        if count and (count < 3 or count % 2 == 0):
            return [f"{count} redis servers: Sentinel needs an odd number, at least 3, for a majority"]
        return []

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)
