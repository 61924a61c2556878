"""The DeployContext modules run against: phases, parallel converge, health gates, change counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from keybuzz.errors import OperationFailed
from keybuzz.logs import get_logger, setup_site_logging
from keybuzz.remote import HostOutcome, SshHost, SshPool, SshSettings, converge_host, remove_host
from keybuzz.remote.edits import ensure_line, ensure_sysctl
from keybuzz.render import Plans
from keybuzz.secrets import redact

if TYPE_CHECKING:
    from keybuzz.site import Site


@dataclass
class Stats:
    """What a run did: tests assert `0 changes, 0 restarts` on a re-run."""

    changes: int = 0
    restarts: int = 0
    changes_by_host: dict[str, int] = field(default_factory=dict)
    restarts_by_container: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: HostOutcome) -> None:
        self.changes += outcome.changes
        self.restarts += outcome.restarts
        if outcome.changes:
            self.changes_by_host[outcome.hostname] = self.changes_by_host.get(outcome.hostname, 0) + outcome.changes
        for action in outcome.actions:
            if action.restarts:
                key = f"{outcome.hostname}/{action.target}"
                self.restarts_by_container[key] = self.restarts_by_container.get(key, 0) + action.restarts


class ConvergeFailed(OperationFailed):
    """Some hosts failed; the others were converged. `failures` maps hostname -> reason."""

    def __init__(self, failures: dict[str, str], changes: int, *, module: str, step: str):
        self.failures, self.changes = failures, changes
        lines = "; ".join(reason if reason.startswith(host) else f"{host}: {reason}"
                          for host, reason in sorted(failures.items()))
        super().__init__(f"{len(failures)} host(s) failed: {lines}", host=",".join(sorted(failures)),
                         module=module, step=step)


class _SiteReporter:
    """One install.log line per action (errors.log for failures); dry-run diffs to the screen."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def action(self, host: str, step: str, result: str, duration: float) -> None:
        self.engine.log_action(host, step, result, duration)

    def show(self, text: str) -> None:
        self.engine.console.print(redact(text), markup=False, highlight=False, soft_wrap=True)


class Engine:
    """DeployContext over SSH, identical for the lab and real servers. Use as `async with Engine(site)`."""

    def __init__(self, site: Site, *, dry_run: bool = False, console: Console | None = None,
                 verbose: bool = False):
        self.site = site
        self.dry_run = dry_run
        self.console = console or Console()
        self.verbose = verbose
        self.settings = SshSettings.from_site(site)
        self.pool = SshPool(self.settings, {s.hostname: str(s.private_ip) for s in site.servers},
                            site.config.container_cli)
        self.stats = Stats()
        self.module = ""
        self.step = ""
        self.log = get_logger("engine")
        self._reporter = _SiteReporter(self)
        setup_site_logging(site.logs_dir)

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()

    # -- DeployContext -------------------------------------------------------------------------

    def host(self, hostname: str) -> SshHost:
        return self.pool.host(hostname)

    @asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        previous, self.step = self.step, name
        before = self.stats.changes
        started = time.monotonic()
        self.log.info("module=%s phase=%r result=start", self.module, name)
        self.console.print(f"  [bold]{escape(self.module)}[/bold] {escape(name)} ...", highlight=False)
        try:
            yield
        except OperationFailed as exc:
            exc.module = exc.module or self.module
            if not getattr(exc, "phase_named", False):  # the innermost phase names the step
                exc.step, exc.phase_named = name, True
            self.log.error("module=%s phase=%r result=failed duration=%.3fs error=%s", self.module, name,
                           time.monotonic() - started, exc)
            raise
        except Exception as exc:  # a client library's error (psycopg, redis...): same report, traceback in the log
            self.log.error("module=%s phase=%r result=failed duration=%.3fs", self.module, name,
                           time.monotonic() - started, exc_info=True)
            failure = OperationFailed(f"{type(exc).__name__}: {redact(str(exc))}", module=self.module, step=name)
            failure.phase_named = True  # type: ignore[attr-defined]
            raise failure from exc
        finally:
            self.step = previous
        duration = time.monotonic() - started
        changes = self.stats.changes - before
        self.log.info("module=%s phase=%r result=ok changes=%d duration=%.3fs", self.module, name, changes, duration)
        verb = "would change" if self.dry_run else "changes"
        self.console.print(f"  [green]ok[/green] {escape(name)} ({duration:.1f} s, {changes} {verb})", highlight=False)

    async def converge(self, hostnames: Sequence[str], plans: Plans) -> int:
        """Apply these hosts' plans in parallel (bounded); every reachable host converges even if others fail."""

        async def one(hostname: str) -> HostOutcome:
            return await converge_host(self.host(hostname), plans[hostname], self.site.config.container_cli,
                                       dry_run=self.dry_run, reporter=self._reporter)

        return await self._on_hosts(hostnames, plans, one)

    async def remove(self, hostnames: Sequence[str], plans: Plans, *, purge_data: bool) -> int:
        """Cleanup: remove these hosts' containers, files and (with purge_data) data folders."""

        async def one(hostname: str) -> HostOutcome:
            return await remove_host(self.host(hostname), plans[hostname], self.site.config.container_cli,
                                     self.module, purge_data=purge_data, dry_run=self.dry_run,
                                     reporter=self._reporter)

        return await self._on_hosts(hostnames, plans, one)

    async def ensure_line(self, hostname: str, path: str, line: str, *, match: str | None = None) -> int:
        changes = await ensure_line(self.host(hostname), path, line, match=match, dry_run=self.dry_run,
                                    reporter=self._reporter)
        self._count(hostname, changes)
        return changes

    async def sysctl(self, hostname: str, key: str, value: str) -> int:
        changes = await ensure_sysctl(self.host(hostname), key, value, dry_run=self.dry_run, reporter=self._reporter)
        self._count(hostname, changes)
        return changes

    async def wait_for(self, what: str, probe: Callable[[], Awaitable[bool]], *, timeout: float,
                       interval: float = 1.0) -> None:
        if self.dry_run:
            self.note(f"dry-run: health gate skipped: {what}")
            return
        started = time.monotonic()
        deadline = started + timeout
        last_error = ""
        while True:
            remaining = deadline - time.monotonic()
            try:
                if await asyncio.wait_for(probe(), timeout=max(remaining, interval)):
                    self.log.info("module=%s step=%r result=ok duration=%.3fs", self.module, f"wait for {what}",
                                  time.monotonic() - started)
                    return
                last_error = ""
            except Exception as exc:  # a probe that raises is "not yet"; its error is kept for the message
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                detail = f" (last probe error: {redact(last_error)})" if last_error else ""
                raise OperationFailed(f"timed out after {timeout:g} s waiting for {what}{detail}",
                                      module=self.module, step=f"wait for {what}")
            await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))

    def changed(self, hostname: str, what: str) -> None:
        """A change made outside converge (API call, SQL, SENTINEL SET): counted and logged like file changes."""
        self._count(hostname, 1)
        self.log_action(hostname, what, "would change" if self.dry_run else "changed", 0.0)

    def note(self, message: str) -> None:
        self.log.info("module=%s note=%s", self.module, message)
        self.console.print(f"  {redact(message)}", markup=False, highlight=False)

    # -- internals -----------------------------------------------------------------------------

    def log_action(self, host: str, step: str, result: str, duration: float) -> None:
        line = "host=%s module=%s step=%r result=%s duration=%.3fs"
        if result == "failed":
            self.log.error(line, host, self.module, step, result, duration)
        else:
            self.log.info(line, host, self.module, step, result, duration)
        if self.verbose or (result == "changed" and not self.dry_run):
            self.console.print(f"    {result} {host}: {redact(step)}", markup=False, highlight=False)

    def _count(self, hostname: str, changes: int) -> None:
        self.stats.changes += changes
        if changes:
            self.stats.changes_by_host[hostname] = self.stats.changes_by_host.get(hostname, 0) + changes

    async def _on_hosts(self, hostnames: Sequence[str], plans: Plans,
                        work: Callable[[str], Awaitable[HostOutcome]]) -> int:
        unknown = [h for h in hostnames if h not in plans]
        if unknown:
            raise ValueError(f"no plan for host(s) {', '.join(unknown)} in module {self.module}")
        limit = asyncio.Semaphore(self.settings.parallelism)

        async def bounded(hostname: str) -> HostOutcome:
            async with limit:
                return await work(hostname)

        outcomes = await asyncio.gather(*(bounded(h) for h in hostnames))
        changes, failures = 0, {}
        for outcome in outcomes:
            self.stats.add(outcome)
            changes += outcome.changes
            if outcome.error:
                failures[outcome.hostname] = outcome.error
                self.log.error("host=%s module=%s step=%r result=failed error=%s", outcome.hostname, self.module,
                               self.step, outcome.error)
        if failures:
            raise ConvergeFailed(failures, changes, module=self.module, step=self.step)
        return changes
