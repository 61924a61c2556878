"""gather_bounded: at most `limit` at once, results in order, exceptions raised or returned."""

from __future__ import annotations

import asyncio

import pytest

from keybuzz.concurrency import gather_bounded


def test_never_more_than_the_limit_at_once_and_results_in_the_items_order() -> None:
    running, peak = 0, 0

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (10 - n))  # later items finish first
        running -= 1
        return n * n

    assert asyncio.run(gather_bounded(3, work, range(10))) == [n * n for n in range(10)]
    assert peak == 3


def test_a_failure_raises_or_is_returned_in_its_place() -> None:
    async def work(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    with pytest.raises(ValueError, match="two"):
        asyncio.run(gather_bounded(2, work, range(4)))
    results = asyncio.run(gather_bounded(2, work, range(4), return_exceptions=True))
    assert results[:2] == [0, 1] and isinstance(results[2], ValueError) and results[3] == 3
