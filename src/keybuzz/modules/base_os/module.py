"""Module 2, base OS & security: every server's firewall (from every module's port declarations), SSH
hardening, DNS, sysctls, journald, swap, time sync and the container runtime: what it declares."""

from __future__ import annotations

from keybuzz.contract import CheckResult, DeployContext, Module, Port
from keybuzz.modules.base_os import checks, deploy, firewall, layout, lint, render
from keybuzz.modules.base_os.firewall import PortTable
from keybuzz.modules.base_os.runtime import SOFTWARE
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.render import HostPlan, Plans
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.site.servers import ROLES

EXAMPLE = {
    "installer": [],
    "ssh": {"allow_users": ["root"], "max_auth_tries": 3, "login_grace_time_s": 20, "from_roles": [],
            "admin_networks": []},
    "firewall": {"open": []},
    "os": "debian-12",
    "dns": {"options": ["timeout:2", "attempts:2"]},
    "journald": {"system_max_use": "1G", "runtime_max_use": "256M", "max_retention_days": 30},
    "disable_swap": True,
    "machine_wide": "apply",
}
# The lab: its control machine sits on the bridge's first address, and its hosts are namespaces of
# one machine (never swap, vm./kernel. sysctls, the clock or packages there).
LAB = {"installer": ["gateway"], "machine_wide": "render"}


class BaseOsModule(Module):
    number = 2
    name = "base_os"
    title = "Base OS & security (firewall per role, SSH hardening)"
    own_role = None
    companion_roles = ROLES  # every server
    settings = (SettingsSection(("base_os",), BaseOsSettings, example=EXAMPLE, lab=LAB),)
    software = SOFTWARE

    def __init__(self) -> None:
        self._port_table: PortTable | None = None
        self.lint_rules = lint.rules(self.port_table)

    def reading_ports(self, table: PortTable) -> BaseOsModule:
        """The registry hands over its port table (a module cannot import the registry, which imports it)."""
        self._port_table = table
        return self

    def port_table(self, site: Site) -> dict[str, list[tuple[Module, Port]]]:
        if self._port_table is None:
            raise RuntimeError("base_os has no port table: the registry binds it with reading_ports()")
        return self._port_table(site)

    def firewalls(self, site: Site) -> dict[str, firewall.HostFirewall]:
        return firewall.firewalls(site, site.settings(BaseOsSettings), self.port_table(site))

    def render(self, site: Site) -> Plans:
        return render.render(site, site.settings(BaseOsSettings), self.port_table(site))

    def precheck_script(self, site: Site) -> str:
        """The facts the deploy starts from, read in the pre-checks' round trip (a second fewer at 40 servers)."""
        return deploy.facts_script(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans, ctx.site.settings(BaseOsSettings), self.firewalls(ctx.site))

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx, self.firewalls(ctx.site))

    async def cleanup(self, ctx: DeployContext, plans: Plans, purge_data: bool) -> None:
        """Drop the firewall table and remove keybuzz's own files. Kept: /etc/resolv.conf (a server needs
        a resolver) and the sshd drop-in (a cleanup never weakens a running server's SSH: delete it by hand)."""
        async with ctx.phase("drop the firewall table"):
            for host in plans:
                if ctx.dry_run:
                    ctx.changed(host, f"nft delete table inet {layout.TABLE} (if loaded)")
                    continue
                result = await ctx.host(host).run(["sh", "-c", f"nft list table inet {layout.TABLE} >/dev/null 2>&1 "
                                                   f"&& nft delete table inet {layout.TABLE} && echo dropped"],
                                                  check=False, timeout=30)
                if "dropped" in result.stdout:
                    ctx.changed(host, f"nft delete table inet {layout.TABLE}")
        kept = (layout.SSHD_DROPIN, layout.RESOLV_CONF)
        owned = {h: HostPlan(h, list(p.directories), [f for f in p.files if f.path not in kept])
                 for h, p in plans.items()}
        await super().cleanup(ctx, owned, purge_data)


MODULE = BaseOsModule()
