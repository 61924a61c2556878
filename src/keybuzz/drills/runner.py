"""One drill round: steady writes, a fault, writes flowing again, then the history checked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from keybuzz.drills.probe import ProbeRunner, WriterProbe
from keybuzz.drills.report import RoundResult


@dataclass
class RoundPlan:
    """What a module gives the framework for one round."""

    scenario: str
    target: str  # host the fault hits
    probe: WriterProbe
    inject: Callable[[], Awaitable[None]]  # the fault itself
    # After writes are back: restore the target (boot/heal) and wait until it is a healthy
    # replica again; returns seconds from its restore to healthy, or None if not applicable.
    recover: Callable[[], Awaitable[float | None]]
    new_primary: Callable[[], Awaitable[str]]
    warmup_s: float = 2.0
    settle_s: float = 2.0  # writes must succeed this long before the outage is considered over
    observe_s: float = 10.0  # a fault that causes no error at all is watched this long
    max_outage_s: float = 120.0
    interval_s: float = 0.1
    # Module-specific observations of the round (e.g. max UP servers in HAProxy), read at the end.
    details: Callable[[], dict[str, object]] | None = None


async def measure_round(number: int, plan: RoundPlan) -> RoundResult:
    runner = ProbeRunner(plan.probe, plan.interval_s, first_id=number * 1_000_000 + 1)
    runner.start()
    injected = False
    try:
        await _wait(lambda: runner.history.healthy_streak(time.monotonic(), plan.warmup_s / 2),
                    plan.warmup_s + 30, "writes never succeeded before the fault")
        await asyncio.sleep(plan.warmup_s)
        fault_at = time.monotonic()
        injected = True
        await plan.inject()
        await _wait(lambda: _recovered(runner, fault_at, plan), plan.max_outage_s,
                    f"writes did not come back within {plan.max_outage_s} s")
    except BaseException as exc:
        await asyncio.to_thread(runner.stop)
        if injected:  # never leave a host powered off or a container killed behind a failed round
            await _restore_after_failure(plan, exc)
        raise
    await asyncio.to_thread(runner.stop)
    history = runner.history
    outage, _, _ = history.outage(fault_at)
    new_primary = await plan.new_primary()
    rejoin = await plan.recover()
    acked = history.acked_ids()
    found = await asyncio.to_thread(plan.probe.read_ids)
    return RoundResult(round=number, scenario=plan.scenario, target=plan.target, outage_s=round(outage, 3),
                       acked=len(acked), lost=len(acked - found), errors=dict(history.errors(fault_at)),
                       new_primary=new_primary, rejoin_s=None if rejoin is None else round(rejoin, 2),
                       details=plan.details() if plan.details else {})


async def _restore_after_failure(plan: RoundPlan, cause: BaseException) -> None:
    try:
        await plan.recover()
    except Exception as exc:
        raise DrillAborted(f"round failed ({cause}) and {plan.target} could not be restored ({exc}): "
                           f"it may still be faulted; restore it by hand") from cause


class DrillAborted(Exception):
    """A round failed and its fault could not be undone: the operator must act."""


def _recovered(runner: ProbeRunner, fault_at: float, plan: RoundPlan) -> bool:
    """Writes flow again: a clean streak after errors, or no error at all for `observe_s`."""
    now = time.monotonic()
    if not runner.history.healthy_streak(now, plan.settle_s):
        return False
    return bool(runner.history.errors(fault_at)) or now - fault_at >= plan.observe_s


async def _wait(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        await asyncio.sleep(0.1)
