"""install / validate / cleanup: modules in the seed's order, each validated before the next."""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from keybuzz.contract import CheckResult, Module
from keybuzz.engine.context import Engine, Stats
from keybuzz.engine.precheck import Problem, base_os_command, precheck
from keybuzz.errors import OperationFailed
from keybuzz.poll import describe
from keybuzz.renders import Renders
from keybuzz.volumes import prepare as volumes


@dataclass
class ModuleResult:
    number: int
    name: str
    status: str  # installed, would install, failed, not implemented yet, no servers, cleaned
    changes: int = 0
    restarts: int = 0
    duration: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""


class PrecheckFailed(OperationFailed):
    """The pre-checks found problems: nothing was changed. `problems` lists every one."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        hosts = sorted({p.host for p in problems})
        super().__init__(f"{len(problems)} problem(s) on {', '.join(hosts)} before anything changed: "
                         + "; ".join(f"{p.host} ({p.ip}): {p.what}" for p in problems), host=",".join(hosts),
                         step="pre-checks")


class InstallFailed(OperationFailed):
    """Install stopped at a module; carries every result so far and the command that resumes."""

    def __init__(self, cause: OperationFailed, results: list[ModuleResult]):
        self.results = results
        super().__init__(str(cause), host=cause.host, module=cause.module, step=cause.step, resume=cause.resume)


def select_modules(modules: Sequence[Module], *, start_from: int | None = None,
                   only: Sequence[str] | None = None) -> list[Module]:
    """The seed's order; --only takes names or numbers; unknown names raise KeyError naming the known ones."""
    chosen = list(modules)
    if only:
        known = {m.name: m for m in modules} | {str(m.number): m for m in modules}
        missing = [name for name in only if name not in known]
        if missing:
            listing = ", ".join(f"{m.number} {m.name}" for m in modules)
            raise KeyError(f"unknown module(s) {', '.join(missing)}; known: {listing}")
        wanted = {known[name].name for name in only}
        chosen = [m for m in chosen if m.name in wanted]
    if start_from is not None:
        chosen = [m for m in chosen if m.number >= start_from]
    if not chosen:
        raise KeyError("this selection (--only / --start-from-module) leaves no module to install")
    return chosen


def resume_command(site: Path, module: Module, only: Sequence[str] | None, dry_run: bool,
                   allow_missing_base_os: bool = False) -> str:
    argv = ["keybuzz", "install", "--site", str(site), "--start-from-module", str(module.number)]
    if only:
        argv += ["--only", ",".join(only)]
    if dry_run:
        argv.append("--dry-run")
    if allow_missing_base_os:
        argv.append("--allow-missing-base-os")
    return shlex.join(argv)


def failed_checks(checks: list[CheckResult]) -> list[CheckResult]:
    return [c for c in checks if c.available and not c.ok]


async def validate_module(engine: Engine, module: Module) -> list[CheckResult]:
    """The module's own checks, then its volumes'."""
    engine.module = module.name
    return [*await module.validate(engine), *await volumes.checks(engine, module)]


async def install_modules(engine: Engine, modules: Sequence[Module], *, clean: bool = False,
                          only: Sequence[str] | None = None, allow_missing_base_os: bool = False) -> list[ModuleResult]:
    """Pre-checks, then deploy and validate each module; a pre-check problem raises PrecheckFailed (nothing
    changed), the first later failure InstallFailed with the resume command. `allow_missing_base_os`
    turns a server without base_os's firewall from a refusal into a warning."""
    results: list[ModuleResult] = []
    site = engine.site
    started = time.monotonic()
    engine.installing = True
    installing = [m for m in modules if m.implemented and m.hosts(site)]
    problems = await precheck(engine, installing, _rendered_hosts(engine.renders, installing))
    if allow_missing_base_os:
        _warn_missing_base_os(engine, [p for p in problems if p.missing_base_os])
        problems = [p for p in problems if not p.missing_base_os]
    if problems:
        raise PrecheckFailed(problems)
    engine.log.info("step=pre-checks result=ok duration=%.3fs", time.monotonic() - started)
    for module in modules:
        if not module.implemented:
            results.append(ModuleResult(module.number, module.name, "not in this version"))
            engine.console.print(f"[yellow]module {module.number} {escape(module.name)}: not in this version of "
                                 "keybuzz, skipped[/yellow]")
            continue
        if not module.hosts(site):
            results.append(ModuleResult(module.number, module.name, "no servers"))
            engine.console.print(f"module {module.number} {module.name}: no server has role(s) "
                                 f"{', '.join(module.roles)}, skipped", markup=False)
            continue
        result = ModuleResult(module.number, module.name, "would install" if engine.dry_run else "installed")
        started = time.monotonic()
        engine.start_module(module.name)
        before = engine.module_start
        engine.console.print(f"[bold]module {module.number} {escape(module.name)}[/bold] ({escape(module.title)})")
        try:
            plans = engine.renders(module)
            if clean:
                await module.cleanup(engine, plans, False)
            await volumes.prepare(engine, module)
            await module.deploy(engine, plans)
            if not engine.dry_run:
                async with engine.phase("validate"):
                    result.checks = await validate_module(engine, module)
                    bad = failed_checks(result.checks)
                    if bad:
                        raise OperationFailed("validation failed: " + "; ".join(f"{c.name}: {c.detail}" for c in bad),
                                              module=module.name, step=f"validate {bad[0].name}")
        except Exception as exc:
            failure = exc if isinstance(exc, OperationFailed) else OperationFailed(
                describe(exc), module=module.name, step="render")
            failure.module = failure.module or module.name
            failure.resume = resume_command(site.root, module, only, engine.dry_run, allow_missing_base_os)
            result.status, result.error = "failed", str(failure)
            _finish(engine, result, before, started)
            results.append(result)
            raise InstallFailed(failure, results) from exc
        _finish(engine, result, before, started)
        results.append(result)
    return results


def _warn_missing_base_os(engine: Engine, missing: list[Problem]) -> None:
    """Said on screen and in the logs: the operator chose to run without the firewall there."""
    if not missing:
        return
    hosts = ", ".join(p.host for p in missing)
    engine.log.warning("step=pre-checks base_os=missing hosts=%s override=--allow-missing-base-os",
                       ",".join(p.host for p in missing))
    engine.console.print(f"[yellow]warning: base_os is not installed on {escape(hosts)} (--allow-missing-base-os): "
                         "no firewall there, every port these modules open is reachable from the whole network "
                         f"until `{escape(base_os_command(engine.site))}`[/yellow]")


def _rendered_hosts(renders: Renders, modules: Sequence[Module]) -> dict[str, bool]:
    """The hosts the modules' plans touch -> whether a container runs there (the container CLI is
    needed); a module that cannot render fails later, with its module named."""
    hosts: dict[str, bool] = {}
    for module in modules:
        with contextlib.suppress(Exception):
            for host, plan in renders(module).items():
                hosts[host] = hosts.get(host, False) or bool(plan.containers)
    return hosts


def _finish(engine: Engine, result: ModuleResult, before: Stats, started: float) -> None:
    result.changes = engine.stats.changes - before.changes
    result.restarts = engine.stats.restarts - before.restarts
    per_host = engine.stats.per_host(before)
    if per_host:
        verb = "would change" if engine.dry_run else "changed"
        engine.console.print(f"  {result.name}: {len(per_host)} host(s) {verb}: " + ", ".join(
            f"{host} {changes} change(s)" + (f" {restarts} (re)start(s)" if restarts else "")
            for host, (changes, restarts) in per_host.items()), markup=False, highlight=False)
    result.duration = time.monotonic() - started
    engine.log.info("module=%s result=%s changes=%d restarts=%d duration=%.3fs", result.name, result.status,
                    result.changes, result.restarts, result.duration)


async def cleanup_module(engine: Engine, module: Module, *, purge_data: bool) -> ModuleResult:
    """Remove the module's containers and files; data folders only with purge_data."""
    started = time.monotonic()
    before = engine.stats.snapshot()
    engine.module = module.name
    result = ModuleResult(module.number, module.name, "would clean" if engine.dry_run else "cleaned")
    plans = engine.renders(module)
    await module.cleanup(engine, plans, purge_data)
    _finish(engine, result, before, started)
    return result
