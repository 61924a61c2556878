"""Drive the engine from lab tests: install, validate, cleanup and one drill round of a module.

Each call opens its own Engine (SSH connections) like a fresh `keybuzz` command would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Mapping

from rich.console import Console

from keybuzz.contract import CheckResult, Module
from keybuzz.drills.report import RoundResult
from keybuzz.drills.session import run_drill
from keybuzz.engine import Engine, Stats, cleanup_module, install_modules, validate_module
from keybuzz.lab import Lab
from keybuzz.lab.faults import LabFaults
from keybuzz.site import Site


@dataclasses.dataclass
class Run:
    stats: Stats
    seconds: float
    output: str


def _quiet(buffer: io.StringIO | None = None) -> Console:
    return Console(file=buffer or io.StringIO(), width=200)


def install(site: Site, module: Module) -> Run:
    """`keybuzz install -v` of one module: the output holds every action line too."""
    buffer = io.StringIO()

    async def go() -> Run:
        started = time.monotonic()
        async with Engine(site, console=_quiet(buffer), verbose=True) as engine:
            await install_modules(engine, [module])
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
