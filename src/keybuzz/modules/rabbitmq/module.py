"""Module 5, RabbitMQ HA: 3 nodes, quorum queues, HAProxy round robin over the healthy members."""

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
    VolumePath,
)
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.modules.rabbitmq import checks, deploy, layout, observability, render
from keybuzz.modules.rabbitmq.drill import SCENARIOS, RabbitmqDrills
from keybuzz.modules.rabbitmq.settings import RabbitmqSettings, RabbitmqTuning
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.values import ERLANG_COOKIE, SERVICE_USER

CLIENTS = (LOAD_BALANCER, "app", "k3s-worker", "k3s-master", "install")


class RabbitmqModule(RabbitmqDrills, Module):
    number = 5
    name = "rabbitmq"
    title = "RabbitMQ HA (quorum queues) + HAProxy"
    own_role = "queue"
    companion_roles = ("haproxy",)
    quorum = Quorum("queue", 3, "quorum queues need a majority of the nodes")
    role_needs = (RoleNeed("queue", "haproxy", "RabbitMQ is reached through HAProxy on the haproxy servers"),)
    settings = (SettingsSection(("rabbitmq",), RabbitmqSettings,
                                example={"memory_limit": "1GB", "disk_free_limit": "2GB", "vhost": "keybuzz"}),
                SettingsSection(("tuning", "rabbitmq"), RabbitmqTuning, example={"net_ticktime_s": 10,
                                                                                   "failure_detector_poll_ms": 1000}))
    credentials = CredentialFile("rabbitmq", (
        CredentialSpec("RABBITMQ_ADMIN_USER", "keybuzz", kind=SERVICE_USER),
        CredentialSpec("RABBITMQ_ADMIN_PASSWORD"),
        CredentialSpec("RABBITMQ_ERLANG_COOKIE", length=48, kind=ERLANG_COOKIE),
        CredentialSpec("RABBITMQ_APP_USER", "keybuzz-app", kind=SERVICE_USER),
        CredentialSpec("RABBITMQ_APP_PASSWORD"),
        CredentialSpec("RABBITMQ_MONITOR_USER", "monitor", kind=SERVICE_USER),  # HAProxy's health checks, the exporters
        CredentialSpec("RABBITMQ_MONITOR_PASSWORD"),
    ), roles=("queue",))
    images = (ImageSpec("rabbitmq", "rabbitmq:3.13.2-management", LabRecipe("3.10-bookworm", ("rabbitmq-server",))),
              haproxy.IMAGE)
    observability = observability
    scenarios = SCENARIOS

    def requirements(self, site: Site) -> list[str]:
        if layout.nodes(site) and layout.vip(site) is None:
            return [f"no load balancer in keybuzz.yaml serves port {layout.AMQP_PORT} (the RabbitMQ way in)"]
        return []

    def ports(self, site: Site) -> list[Port]:
        return [
            Port(layout.AMQP_PORT, "queue", "RabbitMQ AMQP", ("haproxy", "install")),
            Port(layout.MANAGEMENT_PORT, "queue", "RabbitMQ management API", ("haproxy", "install", "monitor")),
            Port(layout.PROMETHEUS_PORT, "queue", "RabbitMQ Prometheus metrics", ("monitor",)),
            Port(layout.EPMD_PORT, "queue", "Erlang port mapper", ("queue",)),
            Port(layout.DIST_PORT, "queue", "Erlang distribution", ("queue",)),
            Port(layout.AMQP_PORT, "haproxy", "HAProxy RabbitMQ frontend", CLIENTS),
            Port(layout.stats_port(site), "haproxy", "HAProxy stats (rabbitmq)", ("install", "monitor")),
        ]

    def volume_paths(self, site: Site) -> list[VolumePath]:
        return [VolumePath("data", "queue", layout.host_paths(site).data, "RabbitMQ data (quorum queue logs)")]

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)


MODULE = RabbitmqModule()
