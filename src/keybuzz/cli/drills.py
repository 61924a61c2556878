"""`keybuzz failover MODULE --scenario S`: measured drills (write outage, acknowledged writes lost)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from keybuzz.cli.options import DEFAULT_SITE, SiteOption
from keybuzz.cli.output import console, err_console, load, print_json


def failover(
    module: Annotated[str, typer.Argument(help="Module name or number (`keybuzz inventory` lists them).")],
    scenario: Annotated[str, typer.Option("--scenario", help="Fault to inject; `--scenario list` lists them.")],
    site: SiteOption = DEFAULT_SITE,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=50, help="Rounds to measure.")] = 1,
    sync: Annotated[bool | None, typer.Option("--sync/--no-sync", help="Synchronous replication on or off during "
                                                                       "the drill (modules that have it; default: "
                                                                       "the site's); put back after.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="The writer waits for a replica to confirm each write "
                                                      "(Redis WAIT) before counting it acknowledged.")] = False,
    hold_for_alerts: Annotated[bool, typer.Option(
        "--hold-for-alerts/--no-hold-for-alerts",
        help="When the site's Prometheus answers: keep the fault on while an alert on its server is pending, "
             "so the report shows whether it pages (production's `for:` outlasts most faults).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Inject a fault on the module's primary while writing through the load balancer, and measure."""
    from keybuzz.drills.runner import DrillAborted
    from keybuzz.drills.session import NotDrillable, check_drillable, run_drill
    from keybuzz.engine import Engine
    from keybuzz.engine.faults import ContainerFaults
    from keybuzz.errors import OperationFailed
    from keybuzz.lab.faults import LabFaults, lab_of_site
    from keybuzz.registry import module_by_name
    from keybuzz.secrets import redact

    try:
        chosen = check_drillable(module_by_name(module))
    except (KeyError, NotDrillable) as exc:
        err_console.print(str(exc.args[0]), markup=False)
        raise typer.Exit(2) from None
    if scenario == "list":
        for name, description in chosen.scenarios.items():
            console.print(f"{name}: {description}", markup=False)
        return
    loaded = load(site)

    async def drill():
        async with Engine(loaded, console=console) as engine:
            lab = lab_of_site(loaded.root)  # a lab site drills through the lab, real servers through the CLI
            faults = LabFaults(lab.dir) if lab else ContainerFaults(engine, chosen.name)
            options = {key: value for key, value in (("sync", sync), ("wait", wait or None)) if value is not None}
            return await run_drill(chosen, engine, faults, scenario, rounds, options,
                                   on_round=lambda r: console.print(
                                       f"round {r.round}: outage {r.outage_s:.2f} s, lost {r.lost}/{r.acked}"),
                                   hold_for_alerts=hold_for_alerts)

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
