"""Check building blocks several modules share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from keybuzz.contract.context import DeployContext
from keybuzz.contract.module import CheckResult

T = TypeVar("T")


async def seen_within(bound_s: float, readers: Mapping[str, Callable[[], Awaitable[bool]]],
                      interval: float = 0.05) -> tuple[dict[str, float], list[str]]:
    """After a write: ask every reader (a replica) until it sees the write, for at most `bound_s`.

    Returns the seconds each reader took and the readers that never saw it. A reader that raises
    (unreachable) is asked again until the bound."""
    started = time.monotonic()
    seen: dict[str, float] = {}

    async def ask(name: str, read: Callable[[], Awaitable[bool]]) -> None:
        while time.monotonic() - started < bound_s:
            try:
                if await read():
                    seen[name] = time.monotonic() - started
                    return
            except Exception:  # an unreachable replica: not seen yet
                pass
            await asyncio.sleep(interval)

    await asyncio.gather(*(ask(name, read) for name, read in readers.items()))
    return seen, [name for name in readers if name not in seen]


def seen_detail(seen: dict[str, float], missing: list[str], bound_s: float) -> str:
    detail = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in seen.items())
    if missing:
        detail += ("; " if detail else "") + f"not seen on {', '.join(missing)} within {bound_s:g} s"
    return detail


async def concurrently(*checks: Awaitable[T | list[T]]) -> list[T]:
    """Independent checks at once (each waits on its own service, so their time is the slowest one's,
    not the sum), their results flattened in the order given."""
    found: list[T] = []
    for answer in await asyncio.gather(*checks):
        found += answer if isinstance(answer, list) else [answer]
    return found


def only_reading(ctx: DeployContext) -> bool:
    """Right after an install that changed nothing on this module: its validate reads states only. The
    checks that exercise the service (a write seen on every replica, a wrong password refused, an index
    built) ran when something last changed; `keybuzz validate MODULE` always runs them."""
    return ctx.installing and not ctx.changed_hosts()


def not_exercised(module: str, what: str) -> CheckResult:
    """The line a validate shows in place of the checks only_reading() leaves out."""
    return CheckResult(f"{what}: not run (this install changed nothing here)", True,
                       f"`keybuzz validate {module}` runs them", available=False)
