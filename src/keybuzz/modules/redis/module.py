"""Module 4, Redis HA: 3 Redis + 3 Sentinels, HAProxy sending clients to the master only: what it declares."""

from __future__ import annotations

from keybuzz import haproxy
from keybuzz.contract import (
    LOAD_BALANCER,
    CheckResult,
    DeployContext,
    Module,
    Port,
    Quorum,
    RoleNeed,
)
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.modules.redis import checks, deploy, layout, lb, lint, observability, render
from keybuzz.modules.redis.drill import SCENARIOS, RedisDrills
from keybuzz.modules.redis.settings import SentinelTuning
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.values import SERVICE_USER

CLIENTS = (LOAD_BALANCER, "app", "k3s-worker", "k3s-master", "install")


class RedisModule(RedisDrills, Module):
    number = 4
    name = "redis"
    title = "Redis HA (Sentinel) + HAProxy"
    own_role = "redis"
    companion_roles = ("haproxy",)
    quorum = Quorum("redis", 3, "Sentinel needs a majority to elect a master")
    role_needs = (RoleNeed("redis", "haproxy", "Redis is reached through HAProxy on the haproxy servers"),)
    settings = (SettingsSection(("tuning", "sentinel"), SentinelTuning,
                                example={"down_after_ms": 1000, "failover_timeout_ms": 10000}),)
    credentials = CredentialFile("redis", (CredentialSpec("REDIS_PASSWORD"), CredentialSpec("REDIS_SENTINEL_PASSWORD"),
                                           CredentialSpec("REDIS_MONITOR_USER", "keybuzz-monitor", kind=SERVICE_USER),
                                           CredentialSpec("REDIS_MONITOR_PASSWORD")),
                                 roles=("redis",))
    images = (ImageSpec("redis", "redis:7.2.5-alpine", LabRecipe("7.0-bookworm", ("redis-server", "redis-sentinel"))),
              haproxy.IMAGE, observability.EXPORTER_IMAGE)
    lint_rules = lint.RULES
    observability = observability
    scenarios = SCENARIOS

    def ports(self, site: Site) -> list[Port]:
        ports = [
            Port(layout.REDIS_PORT, "redis", "Redis", ("haproxy", "redis", "install")),
            Port(layout.SENTINEL_PORT, "redis", "Redis Sentinel", ("haproxy", "redis", "install")),
            Port(layout.REDIS_PORT, "haproxy", "HAProxy Redis frontend (the master)", CLIENTS),
            Port(layout.stats_port(site), "haproxy", "HAProxy stats (redis)", ("install", "monitor")),
        ]
        ports += [Port(lb.gate_port(i), "haproxy", f"HAProxy Redis gate of {s.hostname}", loopback=True)
                  for i, s in enumerate(layout.redis_servers(site))]
        return ports

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)


MODULE = RedisModule()
