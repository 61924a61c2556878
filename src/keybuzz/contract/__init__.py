"""The module contract: what a module declares and the context it runs in (docs/architecture.md)."""

from keybuzz.contract.context import DeployContext, HostHandle, Prefetched
from keybuzz.contract.declare import (
           LOAD_BALANCER,
           AlertRule,
           DashboardPanel,
           Exporter,
           MetricsEndpoint,
           Port,
           Quorum,
           RoleNeed,
           VolumePath,
)
from keybuzz.contract.drill import DrillContext, Faults, RoundPlan, WriterProbe, power_cycle_all
from keybuzz.contract.lint import Finding, Hit, LintInput, Rule
from keybuzz.contract.module import (
    CheckResult,
    Module,
    NotImplementedInThisVersion,
    Observability,
    PendingModule,
)

__all__ = ["LOAD_BALANCER", "AlertRule", "CheckResult", "DashboardPanel", "DeployContext", "DrillContext", "Exporter",
           "Faults", "Finding", "Hit", "HostHandle", "LintInput", "MetricsEndpoint", "Module",
           "NotImplementedInThisVersion", "Observability", "PendingModule", "Port", "Prefetched", "Quorum", "RoleNeed",
           "RoundPlan",
           "Rule", "VolumePath", "WriterProbe", "power_cycle_all"]
