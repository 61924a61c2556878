"""Fault injection: in the lab through its namespaces, on real servers through the container CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keybuzz.containers import MODULE_LABEL
from keybuzz.drills.contract import Faults
from keybuzz.modules.base import DeployContext

RESTORE = {"poweroff": "boot", "crash": "boot", "partition": "heal"}


class LabFaults:
    """Power-off, crash and partition of a lab host (see keybuzz.lab: link down + SIGKILL ...)."""

    kinds = ("poweroff", "crash", "partition")

    def __init__(self, lab_dir: Path):
        from keybuzz.lab import Lab

        self.lab = Lab(lab_dir)

    async def inject(self, kind: str, host: str) -> None:
        if kind not in self.kinds:
            raise ValueError(f"the lab cannot inject {kind!r}; it offers {', '.join(self.kinds)}")
        await asyncio.to_thread(getattr(self.lab, kind), host)

    async def restore(self, kind: str, host: str) -> None:
        await asyncio.to_thread(getattr(self.lab, RESTORE[kind]), host)


class ContainerFaults:
    """Real servers: a crash is `kill` of the module's containers on the host, restored by `start`.

    Power-off and partition need the cloud provider's API, which keybuzz does not drive: those
    scenarios are refused on real servers rather than approximated silently.
    """

    kinds = ("crash", "stop")

    def __init__(self, ctx: DeployContext, module: str, cli: str):
        self.ctx, self.module, self.cli = ctx, module, cli

    async def _containers(self, host: str) -> list[str]:
        result = await self.ctx.host(host).run(
            [self.cli, "ps", "-a", "--filter", f"label={MODULE_LABEL}={self.module}", "--format", "{{.Names}}"])
        return result.stdout.split()

    async def inject(self, kind: str, host: str) -> None:
        if kind not in self.kinds:
            raise ValueError(f"{kind!r} is not possible on real servers (needs the cloud API); "
                             f"use one of {', '.join(self.kinds)}")
        names = await self._containers(host)
        await self.ctx.host(host).run([self.cli, "kill" if kind == "crash" else "stop", *names])

    async def restore(self, kind: str, host: str) -> None:
        names = await self._containers(host)
        await self.ctx.host(host).run([self.cli, "start", *names])


def faults_for(site_root: Path, ctx: DeployContext, module: str, cli: str) -> Faults:
    """A lab site lives in <lab dir>/site next to the lab's state: drill through the lab then."""
    from keybuzz.lab import Lab, LabError

    try:
        lab = Lab(site_root.resolve().parent)
    except LabError:
        return ContainerFaults(ctx, module, cli)
    if lab.exists() and lab.site_dir.resolve() == site_root.resolve():
        return LabFaults(lab.dir)
    return ContainerFaults(ctx, module, cli)
