"""Monitoring of the stateful tier: Prometheus and Alertmanager on the monitor servers, scraping
every server (node exporter) and every module's metrics, with the modules' alert rules. The
stateful servers live outside K3s, so they are scraped whether or not K3s is up."""

from __future__ import annotations

from collections.abc import Callable

from keybuzz.contract import AlertRule, CheckResult, DeployContext, MetricsEndpoint, Module, Port
from keybuzz.images import ImageSpec, LabAlias, LabRecipe
from keybuzz.modules.monitoring import checks, deploy, layout, lint, render, rules, scrape, webauth
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.site.servers import Server
from keybuzz.values import HTTPS_URL, SERVICE_USER

ModuleTable = Callable[[Site], list[Module]]

# Debian's binaries under the official images' paths, so one command line serves both.
_LAB_LINKS = ("ln -sf /usr/bin/prometheus-alertmanager /usr/bin/alertmanager",
              "ln -sf /usr/bin/prometheus-node-exporter /usr/bin/node_exporter")
_SHARED = "the lab's Prometheus image (Debian packages) carries Alertmanager and the node exporter"
IMAGES = (
    ImageSpec("prometheus", "prom/prometheus:v2.53.2", LabRecipe("2.42-bookworm", (
        "prometheus", "prometheus-alertmanager", "prometheus-node-exporter"), after=_LAB_LINKS)),
    ImageSpec("alertmanager", "prom/alertmanager:v0.27.0", LabAlias("prometheus", _SHARED)),
    ImageSpec("node-exporter", "prom/node-exporter:v1.8.2", LabAlias("prometheus", _SHARED)),
)
READERS = ("monitor", "install")  # who may read a metrics port: the monitor servers, keybuzz itself


class MonitoringModule(Module):
    number = 10
    name = layout.MODULE
    title = "Monitoring: Prometheus, Alertmanager, exporters, alert rules"
    own_role = layout.ROLE
    settings = (SettingsSection(("monitoring",), MonitoringSettings,
                                example={"scrape_interval_s": 15, "down_for_s": 30},
                                lab={"scrape_interval_s": 5, "evaluation_interval_s": 5, "down_for_s": 10,
                                     "lag_for_s": 30}),)
    # The login of Prometheus' and Alertmanager's web APIs (operators, keybuzz, Prometheus itself).
    credentials = CredentialFile(layout.CREDENTIALS, (
        CredentialSpec(layout.WEB_USER, "keybuzz", kind=SERVICE_USER),
        CredentialSpec(layout.WEB_PASSWORD, kind=webauth.PASSWORD),
        CredentialSpec(layout.WEB_SALT_KEY),
    ), roles=(layout.ROLE,))
    # The paging service's webhook URL (`monitoring.notify.receiver: webhook`), written by the operator.
    operator_credentials = (CredentialFile(layout.WEBHOOK_CREDENTIALS[0], (
        CredentialSpec(layout.WEBHOOK_CREDENTIALS[1], kind=HTTPS_URL, generated=False),), roles=()),)
    images = IMAGES
    lint_rules = lint.RULES

    def __init__(self) -> None:
        self._modules: ModuleTable | None = None

    def reading_modules(self, table: ModuleTable) -> MonitoringModule:
        """The registry hands over the site's modules (a module cannot import the registry, which imports it)."""
        self._modules = table
        return self

    def site_modules(self, site: Site) -> list[Module]:
        if self._modules is None:
            raise RuntimeError("monitoring has no module table: the registry binds it with reading_modules()")
        return self._modules(site)

    def hosts(self, site: Site) -> list[Server]:
        """Every server gets its node exporter once the site has monitor servers."""
        return list(site.servers) if layout.monitors(site) else []

    def metrics(self, site: Site) -> list[MetricsEndpoint]:
        return scrape.own_endpoints()

    def alerts(self, site: Site) -> list[AlertRule]:
        return rules.host_rules(site.settings(MonitoringSettings)) + rules.monitoring_rules(len(layout.monitors(site)))

    def ports(self, site: Site) -> list[Port]:
        ports = [Port(layout.PROMETHEUS_PORT, layout.ROLE, "Prometheus", READERS),
                 Port(layout.ALERTMANAGER_PORT, layout.ROLE, "Alertmanager", READERS),
                 Port(layout.ALERTMANAGER_CLUSTER_PORT, layout.ROLE, "Alertmanager cluster", (layout.ROLE,)),
                 Port(layout.ALERTMANAGER_CLUSTER_PORT, layout.ROLE, "Alertmanager cluster", (layout.ROLE,), "udp")]
        roles = sorted({role for server in site.servers for role in server.roles})
        ports += [Port(layout.NODE_EXPORTER_PORT, role, "node exporter", READERS) for role in roles]
        ports += [Port(e.port, e.role, f"{e.job} exporter", READERS)
                  for e in scrape.endpoints(site, self.site_modules(site)) if e.exporter]
        return ports

    def render(self, site: Site) -> Plans:
        return render.render(site, self.site_modules(site))

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans, self.site_modules(ctx.site))

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx, self.site_modules(ctx.site))


MODULE = MonitoringModule()
