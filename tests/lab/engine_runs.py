"""Drive the engine from lab tests: install, validate, cleanup and one drill round of a module.

Each call opens its own Engine (SSH connections) like a fresh `keybuzz` command would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml
from rich.console import Console

from keybuzz.contract import CheckResult, Module, WriterProbe
from keybuzz.drills.probe import ProbeRunner
from keybuzz.drills.report import RoundResult
from keybuzz.drills.session import run_drill
from keybuzz.engine import Engine, Stats, cleanup_module, install_modules, validate_module
from keybuzz.lab import Lab
from keybuzz.lab.faults import LabFaults
from keybuzz.registry import load_site
from keybuzz.site import Site


@dataclasses.dataclass
class Run:
    stats: Stats
    seconds: float
    output: str


def _quiet(buffer: io.StringIO | None = None) -> Console:
    return Console(file=buffer or io.StringIO(), width=200)


def install(site: Site, module: Module, *, dry_run: bool = False) -> Run:
    """`keybuzz install -v [--dry-run] --allow-missing-base-os` of one module: the output holds every
    action line too. The session lab's hosts are plain (test_base_os rebuilds them after its own run):
    each module's tests reach its services from this machine without base_os's firewall in between."""
    buffer = io.StringIO()

    async def go() -> Run:
        started = time.monotonic()
        async with Engine(site, console=_quiet(buffer), verbose=True, dry_run=dry_run) as engine:
            await install_modules(engine, [module], allow_missing_base_os=True)
            return Run(engine.stats, time.monotonic() - started, buffer.getvalue())

    return asyncio.run(go())


def cleanup(site: Site, module: Module, *, purge_data: bool) -> None:
    async def go() -> None:
        async with Engine(site, console=_quiet()) as engine:
            await cleanup_module(engine, module, purge_data=purge_data)

    asyncio.run(go())


def validate(site: Site, module: Module) -> list[CheckResult]:
    async def go() -> list[CheckResult]:
        async with Engine(site, console=_quiet()) as engine:
            return await validate_module(engine, module)

    return asyncio.run(go())


def drill_round(site: Site, lab: Lab, module: Module, scenario: str,
                options: Mapping[str, object] | None = None) -> RoundResult:
    """One round through `keybuzz failover`'s code path, faults injected on the lab; every host restored after."""

    async def go() -> RoundResult:
        async with Engine(site, console=_quiet()) as engine:
            report = await run_drill(module, engine, LabFaults(lab.dir), scenario, 1, options)
            return report.rounds[0]

    try:
        return asyncio.run(go())
    finally:
        lab.restore()


@contextmanager
def changed_site(site_dir: Path, edit: Callable[[dict], None]) -> Iterator[Site]:
    """The site with keybuzz.yaml edited for one test; the original text is put back after."""
    path = site_dir / "keybuzz.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        yield load_site(site_dir)
    finally:
        path.write_text(original)


@dataclasses.dataclass
class UnderWrites:
    run: Run
    gap_s: float
    acked: int
    lost: int
    errors: dict[str, int]

    def __str__(self) -> str:
        return (f"{self.run.seconds:.1f} s, {self.run.stats.restarts} restarts, write gap {self.gap_s:.2f} s, "
                f"acknowledged {self.acked}, lost {self.lost}, errors {self.errors}")


def install_under_writes(site: Site, module: Module, probe: WriterProbe, *, settle_s: float = 3.0) -> UnderWrites:
    """`install` of one module while the probe writes every 100 ms; what was acknowledged and then missing."""
    runner = ProbeRunner(probe, 0.1)
    runner.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        run = install(site, module)
        time.sleep(settle_s)
    finally:
        runner.stop()
    acked = runner.history.acked_ids()
    return UnderWrites(run, runner.history.outage(started)[0], len(acked), len(acked - probe.read_ids()),
                       dict(runner.history.errors(started)))
