"""What the monitoring saw of a drill round: each alert that went pending, fired and resolved,
timed from the fault, polled from Prometheus' own alert list (the rules Alertmanager is sent).
Alerts already active before the fault are not the round's and are left out."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from keybuzz.modules.monitoring import api
from keybuzz.poll import describe

POLL_S = 0.5


@dataclass(frozen=True)
class AlertTimes:
    """How long a round gives the monitoring, from the site's scrape, evaluation and `for:` settings."""

    notice_s: float  # from the fault: a failed scrape and an evaluation have happened
    hold_s: float  # from the fault: the longest a fault is held for a pending alert to fire
    settle_s: float  # after the old primary is back: the longest wait for the round's alerts to resolve


@dataclass
class AlertTiming:
    alert: str  # name{labels}: which alert, where
    pending_s: float | None = None  # from the fault
    firing_s: float | None = None
    resolved_s: float | None = None  # None: still active when the round ended

    def text(self) -> str:
        """'HostDown 7.1/29.2 s' (fired/resolved), or 'RedisTwoMasters pending 3.5 s, never fired'."""
        name = self.alert.split("{", 1)[0]
        if self.firing_s is None:
            return f"{name} pending {self.pending_s:.1f} s, never fired"
        resolved = f"{self.resolved_s:.1f} s" if self.resolved_s is not None else "not resolved"
        return f"{name} {self.firing_s:.1f}/{resolved}"


class AlertWatch:
    """Polls Prometheus (the first of `servers` that answers, with the site's login) every POLL_S s
    from `start` on."""

    def __init__(self, servers: list[api.WebApi]):
        self.servers = servers
        self.timings: dict[str, AlertTiming] = {}
        self.last_error = ""
        self._before: set[str] = set()
        self._pending_hosts: set[str] = set()  # servers named by an alert pending now
        self._fault_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _active(self) -> list[api.Alert] | None:
        for server in self.servers:
            try:
                return await api.alerts(server)
            except Exception as exc:
                self.last_error = f"{server.url}: {describe(exc)}"
        return None

    async def baseline(self) -> None:
        """Before the fault: what is already active is not the round's."""
        self._before = {a.key for a in await self._active() or []}

    def start(self, fault_at: float) -> None:
        self._fault_at = fault_at
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await self.observe()
            await asyncio.sleep(POLL_S)

    async def observe(self) -> None:
        active = await self._active()
        if active is None:
            return
        now = round(time.monotonic() - self._fault_at, 2)
        mine = [a for a in active if a.key not in self._before]  # this round's
        seen = {a.key for a in mine}
        self._pending_hosts = {a.labels.get("hostname", "") for a in mine if a.state == "pending"}
        for alert in mine:
            timing = self.timings.setdefault(alert.key, AlertTiming(alert.key))
            timing.resolved_s = None
            if timing.pending_s is None:
                timing.pending_s = now
            if alert.state == "firing" and timing.firing_s is None:
                timing.firing_s = now
        for key, timing in self.timings.items():
            if key not in seen and timing.resolved_s is None:
                timing.resolved_s = now

    async def hold_until_paged(self, hostname: str, notice_s: float, timeout_s: float) -> float:
        """Keep the fault while the monitoring may still page for it: until `notice_s` after the
        fault (a scrape and an evaluation), then as long as any alert naming `hostname` is pending,
        at most `timeout_s` after the fault. A fault shorter than the rules' `for:` is otherwise
        undone before any alert fires. One alert firing does not end the hold: the exporters' own
        `TargetDown` often fires a scrape before the server's `HostDown`, which was then never
        seen firing. Returns the seconds held."""
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - self._fault_at
            if elapsed >= timeout_s or (elapsed >= notice_s and hostname not in self._pending_hosts):
                break
            await asyncio.sleep(POLL_S)
        return round(time.monotonic() - started, 2)

    def open(self) -> list[str]:
        return [t.alert for t in self.timings.values() if t.resolved_s is None]

    async def settle(self, timeout: float) -> list[AlertTiming]:
        """After the round: wait up to `timeout` s for the round's alerts to resolve, then stop."""
        deadline = time.monotonic() + timeout
        while self.open() and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return sorted(self.timings.values(), key=lambda t: (t.pending_s or 0.0, t.alert))
