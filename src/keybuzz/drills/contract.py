"""What a module implements to be drilled by `keybuzz failover MODULE --scenario S`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from keybuzz.drills.runner import RoundPlan
    from keybuzz.modules.base import DeployContext


class Faults(Protocol):
    """Fault injection on one host. In the lab: keybuzz.lab; on real servers: the container
    is stopped/killed over SSH (power-off and partition need the cloud API: not offered)."""

    kinds: tuple[str, ...]

    async def inject(self, kind: str, host: str) -> None:
        """kind: poweroff | crash | partition | stop."""
        ...

    async def restore(self, kind: str, host: str) -> None:
        """Undo `inject`: boot the host (poweroff/crash), heal the link, start the container."""
        ...


@dataclass
class DrillContext:
    ctx: DeployContext  # SSH handles to the site's hosts (checks, patronictl, redis-cli ...)
    faults: Faults
    options: Mapping[str, object] = field(default_factory=dict)  # e.g. {"sync": True}


class Drillable(Protocol):
    """Implemented by modules that can be drilled."""

    def drill_scenarios(self) -> dict[str, str]:
        """Scenario name -> one-line description."""
        ...

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        """The tuning in force (recorded with the results)."""
        ...

    async def prepare_drill(self, dctx: DrillContext) -> None:
        """Once before the rounds (e.g. switch synchronous mode; wait for a healthy cluster)."""
        ...

    async def finish_drill(self, dctx: DrillContext) -> None:
        """After the rounds, even failed ones: put back what prepare_drill changed (keybuzz.yaml's values)."""
        ...

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        """Pick the target (the current primary), build the probe and the fault for one round."""
        ...
