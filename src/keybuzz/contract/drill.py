"""What a module gives the drill framework (keybuzz.drills) to be drilled by `keybuzz failover`.

A module builds, per round, a RoundPlan: a WriterProbe (its client library writing one unique id
per call through the load balancer), the fault to inject on its current primary, and how to wait
for the old primary to rejoin. The framework runs the probe, times the outage and checks which
acknowledged ids were lost. Faults come from outside (the lab, or the container CLI on real
servers): modules never know which.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from keybuzz.contract.context import DeployContext
from keybuzz.secrets import redact


class Faults(Protocol):
    """Fault injection on one host. In the lab: its namespaces; on real servers: the container CLI
    (power-off and partition need the cloud provider's API: not offered there)."""

    kinds: tuple[str, ...]

    async def inject(self, kind: str, host: str, peers: Sequence[str] = ()) -> None:
        """kind: poweroff | crash | partition | isolate (from `peers` only) | stop."""
        ...

    async def restore(self, kind: str, host: str) -> None:
        """Undo `inject`: boot the host (poweroff/crash), heal the link, start the container."""
        ...


COLD_START_OFF_S = 2.0  # how long every node stays down in a cold start


async def power_cycle_all(faults: Faults, kind: str, hosts: Sequence[str]) -> float:
    """A cold start: every host down at once, then all booted together, as after a power loss of the
    whole cluster. Returns the monotonic time of the boot (recovery is timed from there)."""
    await asyncio.gather(*(faults.inject(kind, host) for host in hosts))
    await asyncio.sleep(COLD_START_OFF_S)
    await asyncio.gather(*(faults.restore(kind, host) for host in hosts))
    return time.monotonic()


@dataclass
class DrillContext:
    ctx: DeployContext  # SSH handles to the site's hosts (checks, the services' own CLIs ...)
    faults: Faults
    options: Mapping[str, object] = field(default_factory=dict)  # e.g. {"sync": True}


class WriterProbe(ABC):
    """One connection through the load balancer. Every call must bound its own time: client
    retries would hide the gap we measure (some client libraries retry by default)."""

    @abstractmethod
    def write(self, write_id: int) -> str | None:
        """Write `write_id` durably as the service acknowledges it; raise on any failure.
        Reconnect lazily inside when the previous call failed. Returns the address of the server
        that acknowledged it when the protocol tells (None otherwise)."""

    @abstractmethod
    def read_ids(self) -> set[int]:
        """After the drill, through the new primary: every id present (one attempt; the framework retries)."""

    def classify(self, exc: BaseException) -> str:
        """A short error kind for the report (no secret: messages are redacted)."""
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__  # a kind: grouped in reports

    def close(self) -> None:  # noqa: B027 - optional hook
        """Drop the connection."""


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
    # The primary now; falsy or an exception: not yet, the runner asks again for up to a minute.
    new_primary: Callable[[], Awaitable[str | None]]
    warmup_s: float = 2.0
    settle_s: float = 2.0  # writes must succeed this long before the outage is considered over
    observe_s: float = 10.0  # a fault that causes no error at all is watched this long
    max_outage_s: float = 120.0
    interval_s: float = 0.1
    target_address: str | None = None  # the old primary's address, to time its acknowledgements after the fault
    # Module-specific observations of the round (e.g. max UP servers in HAProxy), read at the end.
    details: Callable[[], dict[str, object]] | None = None
