"""`keybuzz failover MODULE --scenario S`: measured drills (write outage, acknowledged writes lost)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from keybuzz.cli_options import DEFAULT_SITE, SiteOption


def failover(
    module: Annotated[str, typer.Argument(help="Module name or number (postgres, redis, ...).")],
    scenario: Annotated[str, typer.Option("--scenario", help="Fault to inject; `--scenario list` lists them.")],
    site: SiteOption = DEFAULT_SITE,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=50, help="Rounds to measure.")] = 1,
    sync: Annotated[bool, typer.Option("--sync", help="PostgreSQL: synchronous mode during the drill.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Inject a fault on the module's primary while writing through the load balancer, and measure."""
    from keybuzz.cli import console, err_console, load, print_json
    from keybuzz.drills.faults import faults_for
    from keybuzz.drills.runner import DrillAborted
    from keybuzz.drills.session import NotDrillable, as_drillable, run_drill
    from keybuzz.engine import Engine
    from keybuzz.errors import OperationFailed
    from keybuzz.modules import module_by_name
    from keybuzz.secrets import redact

    try:
        chosen = module_by_name(module)
        drillable = as_drillable(chosen)
    except (KeyError, NotDrillable) as exc:
        err_console.print(str(exc.args[0]), markup=False)
        raise typer.Exit(2) from None
    if scenario == "list":
        for name, description in drillable.drill_scenarios().items():
            console.print(f"{name}: {description}", markup=False)
        return
    loaded = load(site)

    async def drill():
        async with Engine(loaded, console=console) as engine:
            faults = faults_for(loaded.root, engine, chosen.name, loaded.config.container_cli)
            return await run_drill(chosen, engine, faults, scenario, rounds, {"sync": True} if sync else {},
                                   on_round=lambda r: console.print(
                                       f"round {r.round}: outage {r.outage_s:.2f} s, lost {r.lost}/{r.acked}"))

    try:
        report = asyncio.run(drill())
    except NotDrillable as exc:
        err_console.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    except (TimeoutError, ValueError, DrillAborted, OperationFailed) as exc:
        err_console.print(redact(f"drill failed: {exc}"), markup=False)
        raise typer.Exit(1) from None
    path = report.save(loaded.logs_dir)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(report.table())
        console.print(f"JSON report: {path}")


def register(app: typer.Typer) -> None:
    app.command()(failover)
