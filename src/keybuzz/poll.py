"""The one way keybuzz waits for something: poll a probe until it holds, with a deadline and the
last reason it did not hold. Used by the engine's health gates, the modules and the drills.

A probe returns a truthy value when the condition holds (that value is returned), or something
falsy when it does not yet; it may raise `NotYet(reason)` to say why, and any other exception
also counts as "not yet" with its text kept. A timeout then says what it waited for, where, and
the last real reason seen, never a bare exception name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from keybuzz.errors import OperationFailed
from keybuzz.secrets import redact

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a probe: the condition does not hold yet, and this is why."""


class WaitTimeout(OperationFailed):
    """A wait ran out of time; `last_error` is the probe's last reason (may be empty)."""

    def __init__(self, what: str, timeout: float, *, where: str = "", last_error: str = "", module: str = ""):
        self.what, self.where, self.timeout, self.last_error = what, where, timeout, last_error
        place = f" on {where}" if where else ""
        reason = f" (last error: {last_error})" if last_error else " (the condition never held; no error was seen)"
        super().__init__(f"timed out after {timeout:g} s waiting for {what}{place}{reason}", host=where,
                         module=module, step=f"wait for {what}")


def describe(exc: BaseException, *, waited: float | None = None) -> str:
    """An exception as a readable reason: its type and message; never a bare type name."""
    if isinstance(exc, NotYet):
        return redact(str(exc))
    text = str(exc).strip()
    if not text and isinstance(exc, TimeoutError):
        text = f"no answer within {waited:g} s" if waited is not None else "no answer in time"
    elif not text:
        text = repr(exc)
    first = text.splitlines()[0] if text else ""
    return redact(f"{type(exc).__name__}: {first}")[:300]


async def wait_until(what: str, probe: Callable[[], Awaitable[T]], *, timeout: float, interval: float = 1.0,
                     where: str = "", module: str = "") -> T:
    """Poll `probe` every `interval` s until it returns a truthy value (returned); WaitTimeout after `timeout` s.

    Each attempt is itself bounded by the time left (at least one interval), so a hanging probe
    cannot outlive the deadline by more than that.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        budget = max(deadline - time.monotonic(), interval)
        try:
            value = await asyncio.wait_for(probe(), timeout=budget)
            if value:
                return value
            last_error = ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # "not yet": the reason is kept for the message
            last_error = describe(exc, waited=budget)
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, where=where, last_error=last_error, module=module)
        await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


async def timed(what: str, probe: Callable[[], Awaitable[object]], *, timeout: float, interval: float = 0.2,
                where: str = "", module: str = "") -> float:
    """Seconds until `probe` held (for measurements: rejoin times, failover times)."""
    started = time.monotonic()
    await wait_until(what, probe, timeout=timeout, interval=interval, where=where, module=module)
    return time.monotonic() - started
