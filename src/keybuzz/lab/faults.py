"""The lab as the drills' fault injector: power-off, crash and partition of a lab host."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from keybuzz.lab.errors import LabError
from keybuzz.lab.lab import Lab

RESTORE = {"poweroff": "boot", "crash": "boot", "partition": "heal", "isolate": "heal"}


class LabFaults:
    """Power-off, crash, partition and isolation of a lab host (see keybuzz.lab: link down + SIGKILL ...)."""

    kinds = ("poweroff", "crash", "partition", "isolate")

    def __init__(self, lab_dir: Path):
        self.lab = Lab(lab_dir)

    async def inject(self, kind: str, host: str, peers: Sequence[str] = ()) -> None:
        if kind not in self.kinds:
            raise ValueError(f"the lab cannot inject {kind!r}; it offers {', '.join(self.kinds)}")
        if kind == "isolate":
            await asyncio.to_thread(self.lab.isolate, host, list(peers))
        else:
            await asyncio.to_thread(getattr(self.lab, kind), host)

    async def restore(self, kind: str, host: str) -> None:
        await asyncio.to_thread(getattr(self.lab, RESTORE[kind]), host)


def lab_of_site(site_root: Path) -> Lab | None:
    """The lab whose site this is (a lab site lives in <lab dir>/site next to its state), or None."""
    try:
        lab = Lab(site_root.resolve().parent)
    except LabError:
        return None
    return lab if lab.exists() and lab.site_dir.resolve() == site_root.resolve() else None
