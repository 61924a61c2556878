"""Run N rounds of one scenario of one module: used by `keybuzz failover`, bench/ and tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from keybuzz.contract import DeployContext, DrillContext, Faults, Module
from keybuzz.drills.report import DrillReport, RoundResult
from keybuzz.drills.runner import measure_round


class NotDrillable(Exception):
    pass


def check_drillable(module: Module) -> Module:
    if not module.scenarios:
        raise NotDrillable(f"module {module.number} {module.name} has no failover drill in this version")
    return module


async def run_drill(module: Module, ctx: DeployContext, faults: Faults, scenario: str, rounds: int,
                    options: Mapping[str, object] | None = None,
                    on_round: Callable[[RoundResult], None] | None = None) -> DrillReport:
    """Prepare once, then measure `rounds` rounds; each round targets the primary of that moment."""
    drillable = check_drillable(module)
    scenarios = drillable.scenarios
    if scenario not in scenarios:
        raise NotDrillable(f"unknown scenario {scenario!r} for {module.name}; known: {', '.join(scenarios)}")
    dctx = DrillContext(ctx, faults, dict(options or {}))
    try:
        await drillable.prepare_drill(dctx)
        report = DrillReport(module.name, scenario, drillable.drill_settings(dctx))
        for number in range(1, rounds + 1):
            result = await measure_round(number, await drillable.plan_round(dctx, scenario, number))
            report.rounds.append(result)
            if on_round:
                on_round(result)
    finally:
        await drillable.finish_drill(dctx)
    return report
