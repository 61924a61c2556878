"""Work over many servers at once, bounded by `ssh.parallelism`.

Unbounded, every server's sshd and shell start in the same instant: on shared machines that burst
starves the services' own heartbeats (a SeaweedFS leader stepped down 3 times in 6 no-op runs on
the lab before every fan-out went through here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal, TypeVar, overload

T = TypeVar("T")
R = TypeVar("R")


@overload
async def gather_bounded(limit: int, work: Callable[[T], Awaitable[R]], items: Iterable[T], *,
                         return_exceptions: Literal[False] = False) -> list[R]: ...


@overload
async def gather_bounded(limit: int, work: Callable[[T], Awaitable[R]], items: Iterable[T], *,
                         return_exceptions: Literal[True]) -> list[R | BaseException]: ...


async def gather_bounded(limit: int, work: Callable[[T], Awaitable[R]], items: Iterable[T], *,
                         return_exceptions: bool = False) -> list[R] | list[R | BaseException]:
    """`work(item)` for every item, at most `limit` running at once; results in the items' order."""
    gate = asyncio.Semaphore(limit)

    async def bounded(item: T) -> R:
        async with gate:
            return await work(item)

    return await asyncio.gather(*(bounded(item) for item in items), return_exceptions=return_exceptions)
