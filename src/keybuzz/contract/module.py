"""The module contract: a module is one folder whose Module subclass declares everything the rest
of keybuzz needs to know of it, and does its job through a DeployContext.

Declarations (read by the registry to build the site-wide tables, see docs/architecture.md):
roles, quorum and companion-role needs, keybuzz.yaml sections, credentials, images, lint rules,
ports per role and who may reach them, metrics endpoints and alert rules, data paths that may live on volumes,
dependencies, drill scenarios.
Doing: render (pure: every file and container that reaches a server), deploy (ordered,
health-gated phases), validate (checks with real clients), cleanup, and drills.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from keybuzz.contract.context import DeployContext
from keybuzz.contract.declare import AlertRule, DashboardPanel, MetricsEndpoint, Port, Quorum, RoleNeed, VolumePath
from keybuzz.contract.drill import DrillContext, RoundPlan
from keybuzz.contract.lint import Rule
from keybuzz.images import ImageSpec, SoftwarePin
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.site.servers import Server


class Observability(Protocol):
    """A module folder's observability.py: its metrics endpoints, alert rules and dashboard panels."""

    def metrics(self, site: Site) -> list[MetricsEndpoint]: ...

    def alerts(self, site: Site) -> list[AlertRule]: ...

    def panels(self) -> list[DashboardPanel]: ...


@dataclass(frozen=True)
class CheckResult:
    """One validation check. `available=False` says the check cannot run with this image/site."""

    name: str
    ok: bool
    detail: str = ""
    available: bool = True


class NotImplementedInThisVersion(Exception):
    """This version of keybuzz has no implementation of the module: said plainly, never skipped silently."""


class Module:
    number: int
    name: str
    title: str
    # The role that makes the module exist (e.g. db); companion roles (e.g. haproxy) get its
    # load balancer part only when servers of the own role exist.
    own_role: str | None = None
    companion_roles: tuple[str, ...] = ()
    implemented: bool = True
    depends_on: tuple[str, ...] = ()  # module names that must be installed first
    quorum: Quorum | None = None
    role_needs: tuple[RoleNeed, ...] = ()
    settings: tuple[SettingsSection, ...] = ()
    credentials: CredentialFile | None = None
    # Files the operator writes (a paging URL): never generated, typed at load like the others.
    operator_credentials: tuple[CredentialFile, ...] = ()
    images: tuple[ImageSpec, ...] = ()
    software: tuple[SoftwarePin, ...] = ()
    lint_rules: tuple[Rule, ...] = ()
    observability: ClassVar[Observability | None] = None  # the folder's observability.py, when it has one
    # drill scenario -> one line; a module with scenarios implements the drill hooks below
    scenarios: ClassVar[dict[str, str]] = {}

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in (self.own_role, *self.companion_roles) if r)

    @property
    def runs_in_lab(self) -> bool:
        """Its servers belong in the lab topologies: implemented, and every image it needs there has a lab
        recipe or alias. Override when the lab runs another backend than production's (sections' `lab`)."""
        return self.implemented and bool(self.images) and all(spec.lab for spec in self.images)

    def precheck_script(self, site: Site) -> str | None:
        """A read-only shell script the pre-checks run on each of the module's servers in their own round
        trip; its output waits in `ctx.prefetched[name]` for this module's deploy (one round trip fewer)."""
        return None

    def hosts(self, site: Site) -> list[Server]:
        if self.own_role and not site.with_role(self.own_role):
            return []
        return [s for s in site.servers if any(s.has(r) for r in self.roles)]

    def requirements(self, site: Site) -> list[str]:
        """Problems with the site for this module beyond quorum and role needs (a missing LB port...)."""
        return []

    def ports(self, site: Site) -> list[Port]:
        """Every port this module listens on, per role, with who may reach it."""
        return []

    def metrics(self, site: Site) -> list[MetricsEndpoint]:
        """What Prometheus scrapes on this module's servers (with the exporters the monitoring module runs)."""
        return self.observability.metrics(site) if self.observability else []

    def alerts(self, site: Site) -> list[AlertRule]:
        """Alerting rules over those metrics, for the failure modes of this module."""
        return self.observability.alerts(site) if self.observability else []

    def panels(self, site: Site) -> list[DashboardPanel]:
        """The module's Grafana dashboard (none: no dashboard)."""
        return self.observability.panels() if self.observability else []

    def volume_paths(self, site: Site) -> list[VolumePath]:
        """The data folders that a site may put on volumes (prepared before deploy, checked by validate)."""
        return []

    def render(self, site: Site) -> Plans:
        """Pure: the directories, files and containers per host."""
        raise NotImplementedError

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        async with ctx.phase("converge all hosts"):
            await ctx.converge(list(plans), plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return []

    async def cleanup(self, ctx: DeployContext, plans: Plans, purge_data: bool) -> None:
        """Remove what deploy made. Override to also wipe outside state (e.g. DCS keys), then call super()."""
        async with ctx.phase("remove containers and files" + (" and data" if purge_data else "")):
            await ctx.remove(list(plans), plans, purge_data=purge_data)

    # -- drills (modules with `scenarios`) ------------------------------------------------------

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        """The tuning in force (recorded with the results)."""
        return {}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        """Once before the rounds (e.g. switch synchronous mode; wait for a healthy cluster)."""

    async def finish_drill(self, dctx: DrillContext) -> None:
        """After the rounds, even failed ones: put back what prepare_drill changed."""

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        """Pick the target (the current primary), build the probe and the fault for one round."""
        raise NotImplementedError(f"module {self.name} has no failover drill")


class PendingModule(Module):
    """A seed module this version does not implement: its declarations (roles, credentials, images,
    lint rules) already count, its render says plainly that nothing is installed for it."""

    implemented = False

    def __init__(self, number: int, name: str, title: str, own_role: str | None,
                 companion_roles: tuple[str, ...] = (), **declarations: object):
        self.number, self.name, self.title = number, name, title
        self.own_role, self.companion_roles = own_role, companion_roles
        for key, value in declarations.items():
            if not hasattr(Module, key):
                raise TypeError(f"unknown module declaration {key!r}")
            setattr(self, key, value)

    def render(self, site: Site) -> Plans:
        raise NotImplementedInThisVersion(
            f"module {self.number} {self.name} ({self.title}): not in this version of keybuzz; "
            "nothing is rendered or installed for it")
