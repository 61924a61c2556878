"""Module 8, ProxySQL in front of Galera (lab: an HAProxy stand-in with the Galera health agents)."""

from __future__ import annotations

from keybuzz import haproxy
from keybuzz.contract import LOAD_BALANCER, CheckResult, DeployContext, Module, Port, RoleNeed
from keybuzz.images import ImageSpec
from keybuzz.modules.proxysql import checks, deploy, layout, render
from keybuzz.modules.proxysql.drill import SCENARIOS, ProxysqlDrills
from keybuzz.modules.proxysql.settings import ProxysqlSettings
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.values import MARIADB_NAME

CLIENTS = (LOAD_BALANCER, "app", "k3s-worker", "k3s-master", "install")
NOT_HERE = "not in Debian or PyPI, cannot run in the lab: the lab runs the HAProxy stand-in (proxysql.engine: haproxy)"


class ProxysqlModule(ProxysqlDrills, Module):
    number = 8
    name = "proxysql"
    title = "ProxySQL in front of Galera"
    own_role = "proxysql"
    depends_on = ("mariadb",)
    role_needs = (RoleNeed("proxysql", "maria", "ProxySQL needs MariaDB servers behind it"),)
    settings = (SettingsSection(("proxysql",), ProxysqlSettings, example={"engine": "proxysql"},
                                lab={"engine": "haproxy"}),)
    credentials = CredentialFile("proxysql", (
        CredentialSpec("PROXYSQL_ADMIN_USER", "admin", kind=MARIADB_NAME),
        CredentialSpec("PROXYSQL_ADMIN_PASSWORD"),
    ), roles=("proxysql",))
    images = (ImageSpec(layout.MODULE, "proxysql/proxysql:2.6.4", note=NOT_HERE), haproxy.IMAGE)
    scenarios = SCENARIOS

    @property
    def runs_in_lab(self) -> bool:
        """The lab's site sets engine haproxy: every image but ProxySQL's has a lab recipe."""
        return all(spec.lab for spec in self.images if spec.key != layout.MODULE)

    def requirements(self, site: Site) -> list[str]:
        if layout.proxies(site) and checks.vip(site) is None:
            return [f"no load balancer in keybuzz.yaml serves port {layout.CLIENT_PORT} (the MariaDB way in)"]
        return []

    def ports(self, site: Site) -> list[Port]:
        ports = [Port(layout.CLIENT_PORT, "proxysql", "MariaDB through the proxy", CLIENTS)]
        if site.settings(ProxysqlSettings).engine == "haproxy":
            ports.append(Port(layout.stats_port(site), "proxysql", "HAProxy stats (Galera stand-in)",
                              ("install", "monitor")))
        return ports

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)


MODULE = ProxysqlModule()
