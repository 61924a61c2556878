"""`keybuzz install`, `validate` and `cleanup`: the engine behind Typer commands (registered by cli.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from keybuzz.cli.options import DEFAULT_SITE, JsonOption, SiteOption
from keybuzz.cli.output import console, fail, load, print_json, report_failure, table
from keybuzz.errors import OperationFailed


def _results_table(title: str, results: list) -> Table:
    style = {"failed": "red", "not in this version": "yellow"}
    return table(title, ("=module", "status", "#changes", "#restarts", "#duration"),
                 [(f"{r.number} {r.name}", r.status, str(r.changes), str(r.restarts), f"{r.duration:.1f} s")
                  for r in results], [style.get(r.status) for r in results])


def install(
    site: SiteOption = DEFAULT_SITE,
    start_from_module: Annotated[int | None, typer.Option(
        "--start-from-module", help="Skip modules numbered below N (resume after a failure).")] = None,
    only: Annotated[str | None, typer.Option("--only", help="Comma-separated module names or numbers.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print per-host diffs; change nothing.")] = False,
    clean: Annotated[bool, typer.Option("--clean", help="Clean up each selected module first (needs --yes).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm --clean.")] = False,
    skip_cleanup: Annotated[bool, typer.Option(
        "--skip-cleanup", help="Do not clean up before installing (the default; accepted for the seed's habit).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every action on screen (always in "
                                                                  "logs/install.log).")] = False,
    force_boot: Annotated[str | None, typer.Option(
        "--force-boot", help="MODULE: boot its stopped nodes from their own data without waiting for peers that "
                             "will not come back (asks for the module's name).")] = None,
    confirm: Annotated[str | None, typer.Option("--confirm", help="The module name, to --force-boot in scripts.")
                       ] = None,
    allow_missing_base_os: Annotated[bool, typer.Option(
        "--allow-missing-base-os", help="Install on servers where base_os (the firewall) is not installed: a "
                                        "warning instead of a refusal; their ports stay open to the network.")
    ] = False,
) -> None:
    """Install the modules of this version in the seed's order, each validated before the next.

    First `keybuzz lint` (its errors stop the run) and the pre-checks of every host (SSH, container
    CLI, disk, ports, clock, base_os's firewall: every problem at once); nothing changes unless both pass."""
    from keybuzz.cli.site_cmds import lint_table
    from keybuzz.engine import Engine, InstallFailed, PrecheckFailed, install_modules, select_modules
    from keybuzz.lint import lint
    from keybuzz.registry import MODULES
    from keybuzz.renders import Renders

    if clean and skip_cleanup:
        raise fail("--clean and --skip-cleanup contradict each other; pick one")
    if clean and not yes and not dry_run:
        raise fail("--clean removes the containers and files of every selected module before installing; "
                    "add --yes to confirm (data folders are kept)")
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    try:
        modules = select_modules(MODULES, start_from=start_from_module, only=names)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    forced: frozenset[str] = frozenset()
    if force_boot:
        typed = confirm if confirm is not None else typer.prompt(
            f"--force-boot lets {force_boot}'s stopped nodes start without their peers: a node that was not the "
            "last to stop can come back with older data. Type the module name to confirm")
        if typed.strip() != force_boot:
            raise fail(f"confirmation {typed!r} does not match {force_boot!r}; nothing was changed")
        forced = frozenset({force_boot})
    loaded = load(site)
    renders = Renders(loaded)
    errors = [f for f in lint(loaded, renders=renders) if f.severity == "error"]
    if errors:
        console.print(lint_table(f"lint {site}: {len(errors)} error(s)", errors))
        raise fail(f"install refused: `keybuzz lint --site {site}` reports {len(errors)} error(s); fix them first "
                   "(nothing was changed)")

    async def run() -> list:
        async with Engine(loaded, dry_run=dry_run, console=console, verbose=verbose, force_boot=forced,
                          renders=renders) as engine:
            results = await install_modules(engine, modules, clean=clean, only=names,
                                            allow_missing_base_os=allow_missing_base_os)
            console.print(_results_table(f"install {site}" + (" (dry-run)" if dry_run else ""), results))
            verb = "would change" if dry_run else "changes"
            restarts = "container (re)starts that would happen" if dry_run else "container (re)starts"
            console.print(f"{engine.stats.changes} {verb}, {engine.stats.restarts} {restarts}")
            return results

    try:
        asyncio.run(run())
    except PrecheckFailed as exc:
        console.print(table(f"pre-checks {site}: {len(exc.problems)} problem(s), nothing was changed",
                            ("=host", "=IP", "what failed", "likely fix"),
                            [(p.host, p.ip, p.what, p.fix) for p in exc.problems], ["red"] * len(exc.problems)))
        raise typer.Exit(1) from None
    except InstallFailed as exc:
        console.print(_results_table(f"install {site}", exc.results))
        report_failure(exc)
        raise typer.Exit(1) from None
    except OperationFailed as exc:
        report_failure(exc)
        raise typer.Exit(1) from None


def validate(
    module: Annotated[str | None, typer.Argument(help="Module name or number (default: every landed module).")] = None,
    site: SiteOption = DEFAULT_SITE,
    as_json: JsonOption = False,
) -> None:
    """Run the modules' checks against the running platform; exit 1 if any fails."""
    from keybuzz.contract import CheckResult
    from keybuzz.engine import Engine, validate_module
    from keybuzz.registry import MODULES, module_by_name
    from keybuzz.secrets import redact

    try:
        modules = [module_by_name(module)] if module else list(MODULES)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    loaded = load(site)
    report: list[dict] = []

    async def run() -> None:
        async with Engine(loaded, console=console) as engine:
            for mod in modules:
                entry: dict = {"module": mod.name, "number": mod.number, "checks": []}
                report.append(entry)
                if not mod.implemented:
                    entry["status"] = "not in this version"
                    continue
                if not mod.hosts(loaded):
                    entry["status"] = "no servers"
                    continue
                try:
                    checks = await validate_module(engine, mod)
                except OperationFailed as exc:
                    checks = [CheckResult("reachable", False, str(exc))]
                entry["checks"] = [{"name": c.name, "ok": c.ok, "available": c.available,
                                    "detail": redact(c.detail)} for c in checks]
                entry["status"] = "ok" if all(c.ok or not c.available for c in checks) else "failed"

    asyncio.run(run())
    failed = any(e["status"] == "failed" for e in report)
    if as_json:
        print_json({"modules": report, "ok": not failed})
    else:
        rows, styles = [], []
        for entry in report:
            name = f"{entry['number']} {entry['module']}"
            if not entry["checks"]:
                rows.append((name, "-", entry["status"], ""))
                styles.append("dim")
            for check in entry["checks"]:
                result = "ok" if check["ok"] else ("n/a" if not check["available"] else "FAIL")
                rows.append((name, check["name"], result, check["detail"]))
                styles.append({"ok": "green", "n/a": "dim", "FAIL": "red"}[result])
        console.print(table(f"validate {site}", ("=module", "check", "=result", "detail"), rows, styles))
    if failed:
        raise typer.Exit(1)


def cleanup(
    module: Annotated[str, typer.Argument(help="Module name or number.")],
    site: SiteOption = DEFAULT_SITE,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm removal of the module's containers and files.")] = False,
    purge_data: Annotated[bool, typer.Option("--purge-data", help="Also delete data folders (asks for the name).")
                          ] = False,
    confirm: Annotated[str | None, typer.Option("--confirm", help="The module name, to --purge-data in scripts.")
                       ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed.")] = False,
) -> None:
    """Remove a module's containers and files; data folders only with --purge-data."""
    from keybuzz.engine import Engine, cleanup_module
    from keybuzz.registry import module_by_name

    try:
        chosen = module_by_name(module)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    if not chosen.implemented:
        raise fail(f"module {chosen.number} {chosen.name} is not in this version of keybuzz: nothing to clean up")
    if not yes and not dry_run:
        raise fail(f"cleanup removes the containers and files of {chosen.name} on every host; add --yes to confirm")
    if purge_data and not dry_run:
        typed = confirm if confirm is not None else typer.prompt(
            f"--purge-data deletes the data of {chosen.name} for good. Type the module name to confirm")
        if typed.strip() != chosen.name:
            raise fail(f"confirmation {typed!r} does not match {chosen.name!r}; nothing was changed")
    loaded = load(site)

    async def run() -> None:
        async with Engine(loaded, dry_run=dry_run, console=console) as engine:
            result = await cleanup_module(engine, chosen, purge_data=purge_data)
            console.print(_results_table(f"cleanup {site}", [result]))

    try:
        asyncio.run(run())
    except OperationFailed as exc:
        report_failure(exc)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    for command in (install, validate, cleanup):
        app.command()(command)
