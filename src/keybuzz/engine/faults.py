"""Fault injection on real servers: the module's containers stopped or killed over SSH."""

from __future__ import annotations

from collections.abc import Sequence

from keybuzz.contract import DeployContext


class ContainerFaults:
    """Real servers: a crash is `kill` of the module's containers on the host, restored by `start`.

    Power-off, partition and isolation need the cloud provider's API or its firewall, which keybuzz
    does not drive: those scenarios are refused on real servers rather than approximated silently.
    """

    kinds = ("crash", "stop")

    def __init__(self, ctx: DeployContext, module: str):
        self.ctx, self.module = ctx, module

    async def _containers(self, host: str) -> list[str]:
        result = await self.ctx.host(host).run(self.ctx.cli.list_module(self.module))
        return result.stdout.split()

    async def inject(self, kind: str, host: str, peers: Sequence[str] = ()) -> None:
        if kind not in self.kinds:
            raise ValueError(f"{kind!r} is not possible on real servers (needs the cloud API); "
                             f"use one of {', '.join(self.kinds)}")
        names = await self._containers(host)
        cli = self.ctx.cli
        await self.ctx.host(host).run(cli.kill(*names) if kind == "crash" else cli.stop(*names))

    async def restore(self, kind: str, host: str) -> None:
        await self.ctx.host(host).run(self.ctx.cli.start(*await self._containers(host)))
