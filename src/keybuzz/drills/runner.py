"""One drill round: steady writes, a fault, writes flowing again, then the history checked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from keybuzz.contract import RoundPlan
from keybuzz.drills.alerts import AlertTimes, AlertWatch
from keybuzz.drills.probe import ProbeRunner
from keybuzz.drills.report import RoundResult
from keybuzz.poll import wait_until

READ_BACK_TIMEOUT_S = 60
NEW_PRIMARY_TIMEOUT_S = 60


async def measure_round(number: int, plan: RoundPlan, watch: AlertWatch | None = None,
                        timing: AlertTimes | None = None) -> RoundResult:
    """With a `watch`, the monitoring's alerts are timed too, from the fault until they resolve; the
    fault is held while an alert on its server is pending (AlertWatch.hold_until_paged)."""
    runner = ProbeRunner(plan.probe, plan.interval_s, first_id=number * 1_000_000 + 1)
    runner.start()
    injected = False
    try:
        await _wait(lambda: runner.history.healthy_streak(time.monotonic(), plan.warmup_s / 2),
                    plan.warmup_s + 30, "writes succeeding before the fault")
        await asyncio.sleep(plan.warmup_s)
        if watch:
            await watch.baseline()
        fault_at = time.monotonic()
        if watch:
            watch.start(fault_at)
        injected = True
        await plan.inject()
        await _wait(lambda: _recovered(runner, fault_at, plan), plan.max_outage_s,
                    "writes through the load balancer again after the fault")
    except BaseException as exc:
        await asyncio.to_thread(runner.stop)
        if watch:
            await watch.settle(0)
        if injected:  # never leave a host powered off or a container killed behind a failed round
            await _restore_after_failure(plan, exc)
        raise
    await asyncio.to_thread(runner.stop)
    history = runner.history
    outage, _, _ = history.outage(fault_at)
    held = 0.0
    try:  # the way in can still be settling (a load balancer's checks): asked until it answers
        new_primary = await wait_until("the new primary through the load balancer", plan.new_primary,
                                       timeout=NEW_PRIMARY_TIMEOUT_S, interval=0.5)
        if watch and timing:
            held = await watch.hold_until_paged(plan.target, timing.notice_s, timing.hold_s)
    except BaseException as exc:
        if watch:
            await watch.settle(0)
        await _restore_after_failure(plan, exc)
        raise
    rejoin = await plan.recover()
    acked = history.acked_ids()
    found = await read_back(plan)
    lost = acked - found
    alerts = await watch.settle(timing.settle_s if timing else 0.0) if watch else []
    old_primary_acked = (history.last_ack_after(fault_at, server=plan.target_address)
                         if plan.target_address and any(r.server for r in history.records) else None)
    return RoundResult(round=number, scenario=plan.scenario, target=plan.target, outage_s=round(outage, 3),
                       acked=len(acked), lost=len(lost), errors=dict(history.errors(fault_at)),
                       new_primary=new_primary, rejoin_s=None if rejoin is None else round(rejoin, 2),
                       lost_window_s=history.last_ack_after(fault_at, ids=lost),
                       old_primary_acked_s=old_primary_acked,
                       details=plan.details() if plan.details else {}, alerts=alerts, fault_held_s=held)


async def read_back(plan: RoundPlan) -> set[int]:
    """Every id the new primary holds; retried while the write path comes back (an empty set is an answer)."""

    async def attempt() -> tuple[set[int]]:
        return (await asyncio.to_thread(plan.probe.read_ids),)

    (ids,) = await wait_until("the drill's ids read back through the load balancer", attempt,
                              timeout=READ_BACK_TIMEOUT_S, interval=0.5)
    return ids


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


async def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    async def holds() -> bool:
        return condition()

    await wait_until(what, holds, timeout=timeout, interval=0.1)
