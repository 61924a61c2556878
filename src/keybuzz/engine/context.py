"""The DeployContext modules run against: phases, parallel converge, health gates, change counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from keybuzz.cache import CACHE_DIR, JsonCache
from keybuzz.concurrency import gather_bounded
from keybuzz.containers import ContainerCli
from keybuzz.errors import OperationFailed
from keybuzz.logs import get_logger, setup_site_logging
from keybuzz.poll import describe, wait_until
from keybuzz.remote import HostOutcome, SshHost, SshPool, SshSettings, converge_host, due_actions, remove_host
from keybuzz.remote.edits import ensure_line, ensure_sysctl
from keybuzz.render import FilledAtDeploy, ImageUser, Plans, filled, image_users, with_owners
from keybuzz.renders import Renders
from keybuzz.secrets import redact

if TYPE_CHECKING:
    from keybuzz.contract.context import Prefetched
    from keybuzz.site import Site


@dataclass
class Stats:
    """What a run did: tests assert `0 changes, 0 restarts` on a re-run."""

    changes: int = 0
    restarts: int = 0
    changes_by_host: dict[str, int] = field(default_factory=dict)
    restarts_by_host: dict[str, int] = field(default_factory=dict)
    restarts_by_container: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: HostOutcome) -> None:
        self.changes += outcome.changes
        self.restarts += outcome.restarts
        if outcome.changes:
            self.changes_by_host[outcome.hostname] = self.changes_by_host.get(outcome.hostname, 0) + outcome.changes
        if outcome.restarts:
            self.restarts_by_host[outcome.hostname] = self.restarts_by_host.get(outcome.hostname, 0) + outcome.restarts
        for action in outcome.actions:
            if action.restarts:
                key = f"{outcome.hostname}/{action.target}"
                self.restarts_by_container[key] = self.restarts_by_container.get(key, 0) + action.restarts

    def per_host(self, since: Stats) -> dict[str, tuple[int, int]]:
        """host -> (changes, restarts) made after the snapshot `since`."""
        hosts = sorted(set(self.changes_by_host) | set(self.restarts_by_host))
        delta = {h: (self.changes_by_host.get(h, 0) - since.changes_by_host.get(h, 0),
                     self.restarts_by_host.get(h, 0) - since.restarts_by_host.get(h, 0)) for h in hosts}
        return {h: d for h, d in delta.items() if d != (0, 0)}

    def snapshot(self) -> Stats:
        return Stats(self.changes, self.restarts, dict(self.changes_by_host), dict(self.restarts_by_host),
                     dict(self.restarts_by_container))


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
                 verbose: bool = False, force_boot: frozenset[str] = frozenset(), renders: Renders | None = None):
        self.site = site
        self.renders = renders or Renders(site)  # lint's, when the command linted first
        self.dry_run = dry_run
        self.force_boot = force_boot
        self.console = console or Console()
        self.verbose = verbose
        self.settings = SshSettings.from_site(site)
        self.cli = ContainerCli(site.config.container_cli)
        self.pool = SshPool(self.settings, {s.hostname: str(s.private_ip) for s in site.servers},
                            site.config.container_cli)
        self._image_ids: dict[ImageUser, str] = {}
        self._image_user_cache = JsonCache(site.root / CACHE_DIR / "image-users.json")
        self.stats = Stats()
        self.installing = False
        self.module_start = Stats()  # the stats when the current module started (changed_hosts)
        self.module_scratch: dict[str, object] = {}
        self.assessed_volumes: dict[object, Any] = {}  # keybuzz.volumes.prepare: the pre-checks' findings
        self.prefetched: dict[str, dict[str, Prefetched]] = {}  # Module.precheck_script's output
        self.module = ""
        self.step = ""
        self.log = get_logger("engine")
        self._reporter = _SiteReporter(self)
        # A live line per running phase (hosts done/total, elapsed) on a terminal; logs and pipes get
        # one line per phase. Every action is in install.log; on screen with -v.
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(),
                                 TextColumn("hosts"), TimeElapsedColumn(), console=self.console, transient=True,
                                 disable=not self.console.is_terminal or verbose or dry_run)
        self._task: TaskID | None = None
        setup_site_logging(site.logs_dir)

    async def __aenter__(self) -> Engine:
        self.progress.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.progress.stop()
        self._image_user_cache.save()
        await self.pool.close()

    # -- DeployContext -------------------------------------------------------------------------

    def host(self, hostname: str) -> SshHost:
        return self.pool.host(hostname)

    def start_module(self, name: str) -> None:
        """What follows is this module's: its changes are counted from here (changed_hosts)."""
        self.module, self.module_start, self.module_scratch = name, self.stats.snapshot(), {}

    def changed_hosts(self) -> frozenset[str]:
        return frozenset(self.stats.per_host(self.module_start))

    @asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        previous, self.step = self.step, name
        outer_task, self._task = self._task, self.progress.add_task(f"{self.module}: {name}", total=0)
        before = self.stats.changes
        started = time.monotonic()
        self.log.info("module=%s phase=%r result=start", self.module, name)
        if self.verbose:
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
        except Exception as exc:  # a client library's error: same report, traceback in the log
            self.log.error("module=%s phase=%r result=failed duration=%.3fs", self.module, name,
                           time.monotonic() - started, exc_info=True)
            failure = OperationFailed(describe(exc), module=self.module, step=name)
            failure.phase_named = True  # type: ignore[attr-defined]
            raise failure from exc
        finally:
            self.step = previous
            self.progress.remove_task(self._task)
            self._task = outer_task
        duration = time.monotonic() - started
        changes = self.stats.changes - before
        self.log.info("module=%s phase=%r result=ok changes=%d duration=%.3fs", self.module, name, changes, duration)
        verb = "would change" if self.dry_run else "changes"
        self.console.print(f"  [green]ok[/green] {escape(self.module)}: {escape(name)} ({duration:.1f} s, {changes} "
                           f"{verb})", highlight=False)

    async def converge(self, hostnames: Sequence[str], plans: Plans) -> int:
        """Apply these hosts' plans in parallel (bounded); every reachable host converges even if others fail.

        Values declared in render as filled at deploy are resolved first: image users' uid:gid are
        read from the images; file contents must have been filled by the module (in dry-run an
        unfilled one is shown as what it will hold)."""

        async def one(hostname: str) -> HostOutcome:
            plan = with_owners(plans[hostname], self._image_ids)
            return await converge_host(self.host(hostname), plan, self.cli, dry_run=self.dry_run,
                                       reporter=self._reporter)

        plans = self._unfilled_checked({h: plans[h] for h in hostnames if h in plans})
        await self._read_image_users(plans)
        return await self._on_hosts(hostnames, plans, one)

    async def due(self, hostnames: Sequence[str], plans: Plans) -> frozenset[str]:
        selected = self._unfilled_checked({h: plans[h] for h in hostnames if h in plans})
        await self._read_image_users(selected)

        async def one(hostname: str) -> bool:
            _, actions = await due_actions(self.host(hostname), with_owners(selected[hostname], self._image_ids),
                                           self.cli)
            return bool(actions)

        answers = await gather_bounded(self.settings.parallelism, one, selected)
        return frozenset(h for h, answer in zip(selected, answers, strict=True) if answer)

    async def with_owners(self, plans: Plans) -> Plans:
        """The plans with image users' uid:gid filled in, as converge applies them."""
        await self._read_image_users(plans)
        return {host: with_owners(plan, self._image_ids) for host, plan in plans.items()}

    async def remove(self, hostnames: Sequence[str], plans: Plans, *, purge_data: bool) -> int:
        """Cleanup: remove these hosts' containers, files and (with purge_data) data folders."""

        async def one(hostname: str) -> HostOutcome:
            return await remove_host(self.host(hostname), plans[hostname], self.cli, self.module,
                                     purge_data=purge_data, dry_run=self.dry_run, reporter=self._reporter,
                                     module_dirs=(self.site.data_dir(self.module), self.site.config_dir(self.module)))

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

    async def wait_for(self, what: str, probe: Callable[[], Awaitable[object]], *, timeout: float,
                       interval: float = 1.0, where: str = "") -> None:
        if self.dry_run:
            self.note(f"dry-run: health gate skipped: {what}")
            return
        started = time.monotonic()
        await wait_until(what, probe, timeout=timeout, interval=interval, where=where, module=self.module)
        self.log.info("module=%s step=%r result=ok duration=%.3fs", self.module, f"wait for {what}",
                      time.monotonic() - started)

    def changed(self, hostname: str, what: str) -> None:
        """A change made outside converge (API call, SQL, SENTINEL SET): counted and logged like file changes."""
        self._count(hostname, 1)
        self.log_action(hostname, what, "would change" if self.dry_run else "changed", 0.0)

    def note(self, message: str) -> None:
        self.log.info("module=%s note=%s", self.module, message)
        self.console.print(f"  {redact(message)}", markup=False, highlight=False)

    # -- internals -----------------------------------------------------------------------------

    def _unfilled_checked(self, plans: Plans) -> Plans:
        """A file left FilledAtDeploy is a module bug; in dry-run it shows as what it will hold."""
        values = {}
        for host, plan in plans.items():
            for spec in plan.files:
                if isinstance(spec.content, FilledAtDeploy):
                    if not self.dry_run:
                        raise OperationFailed(f"{host}:{spec.path}: its content ({spec.content.what}) was not "
                                              "filled before converge", host=host, module=self.module, step=self.step)
                    values[spec.content.key] = f"(filled at deploy: {spec.content.what})\n"
        return filled(plans, values) if values else plans

    async def _read_image_users(self, plans: Plans) -> None:
        """uid:gid of each image user, once per run and image, on the first host that needs it (a
        throwaway container, no network; the same pinned image has the same users everywhere), or from
        the site's cache of what earlier runs read from the same image id (one `image inspect`
        instead of a container: ~0.3 s a module on a no-op re-run). A dry-run never pulls: with the
        image absent the owner is shown as the image user's name."""

        async def read(host: str, user: ImageUser) -> None:
            found = await self.host(host).run(self.cli.image_id(user.image), check=False, timeout=60)
            image_id = found.stdout.strip() if found.ok else ""
            if self.dry_run and not image_id:
                self.note(f"dry-run: {user.image} is not on {host} yet; owner shown as {user}")
                return
            if f"{image_id} {user.user}" in self._image_user_cache:  # an image id names its content
                self._image_ids[user] = self._image_user_cache[f"{image_id} {user.user}"]
                return
            result = await self.host(host).run(self.cli.user_ids(user.image, user.user), check=False, timeout=300)
            ids = result.stdout.split()
            if not result.ok or len(ids) != 2 or not all(i.isdigit() for i in ids):
                raise OperationFailed(f"cannot read the uid of user {user.user} in image {user.image} on {host}: "
                                      f"{redact(result.stderr.strip())[:200] or 'no output'}", host=host,
                                      module=self.module, step="image user")
            self._image_ids[user] = f"{ids[0]}:{ids[1]}"
            if image_id:
                self._image_user_cache.remember(f"{image_id} {user.user}", self._image_ids[user])

        first_host: dict[ImageUser, str] = {}
        for host, user in sorted(image_users(plans), key=lambda pair: pair[0]):
            if user not in self._image_ids:
                first_host.setdefault(user, host)
        await asyncio.gather(*(read(host, user) for user, host in first_host.items()))

    def log_action(self, host: str, step: str, result: str, duration: float) -> None:
        line = "host=%s module=%s step=%r result=%s duration=%.3fs"
        if result == "failed":
            self.log.error(line, host, self.module, step, result, duration)
        else:
            self.log.info(line, host, self.module, step, result, duration)
        if self.verbose:
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
        task = self._task
        if task is not None:
            current = next(t for t in self.progress.tasks if t.id == task)
            self.progress.update(task, total=(current.total or 0) + len(hostnames))

        async def counted(hostname: str) -> HostOutcome:
            try:
                return await work(hostname)
            finally:
                if task is not None:
                    self.progress.advance(task)

        outcomes = await gather_bounded(self.settings.parallelism, counted, hostnames)
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
