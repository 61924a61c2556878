"""What a module's deploy, checks, cleanup and drills run against: the engine, seen as protocols.

A module's deploy is a sequence of health-gated phases written as plain async code:

    async with ctx.phase("start first node"):
        await ctx.converge([first], plans)
        await ctx.wait_for("leader elected", lambda: self._has_leader(ctx), timeout=60)

The engine (keybuzz.engine) implements DeployContext identically for the lab and for real
servers; in dry-run, converge prints diffs and changes nothing, and gates are skipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from keybuzz.containers import ContainerCli
from keybuzz.remote.ssh import RunResult
from keybuzz.render import Plans
from keybuzz.site import Site


@dataclass(frozen=True)
class Prefetched:
    """What a module's pre-check script printed on one server, and when (this machine's clock) it was asked."""

    asked_at: float
    stdout: str


class HostHandle(Protocol):
    """One remote host as modules see it."""

    hostname: str
    address: str

    async def run(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = None,
                  stdin: str | None = None) -> RunResult: ...

    async def container_exec(self, container: str, argv: Sequence[str], *, check: bool = True,
                             timeout: float | None = None, user: str | None = None) -> RunResult: ...


class DeployContext(Protocol):
    site: Site
    dry_run: bool
    cli: ContainerCli  # argv builders for the site's container CLI
    # Modules the operator asked to boot from their own data without waiting for peers that may never
    # come back (`keybuzz install --force-boot MODULE`, typed confirmation). Never guessed by a module.
    force_boot: frozenset[str]
    # True while `install` runs (a module is validated right after its deploy), False for `validate`:
    # checks that only prove what a change could break may then be narrowed to what changed.
    installing: bool
    # What this module's deploy read of the servers, for its validate in the same run (emptied when the
    # next module starts): right after a deploy that changed nothing it is still what the servers hold.
    module_scratch: dict[str, object]
    # module name -> host -> what Module.precheck_script printed there, with this machine's clock when it
    # was asked; the module takes (pops) it once: a later read goes to the servers.
    prefetched: dict[str, dict[str, Prefetched]]

    def host(self, hostname: str) -> HostHandle: ...

    def changed_hosts(self) -> frozenset[str]:
        """The hosts the current module changed (or restarted something on) in this run so far: empty on a
        no-op re-run, where waits that only matter after a change (a fresh start settling) are skipped."""
        ...

    def phase(self, name: str) -> AbstractAsyncContextManager[None]: ...

    async def converge(self, hostnames: Sequence[str], plans: Plans) -> int:
        """Apply the plans of these hosts in parallel; returns the number of changes."""
        ...

    async def due(self, hostnames: Sequence[str], plans: Plans) -> frozenset[str]:
        """The hosts whose converge would change something now (one probe each, all at once; nothing changes):
        a rolling change skips the others instead of visiting them one by one."""
        ...

    async def wait_for(self, what: str, probe: Callable[[], Awaitable[object]], *, timeout: float,
                       interval: float = 1.0, where: str = "") -> None:
        """Health gate (keybuzz.poll.wait_until): the timeout names `what`, `where` and the last reason."""
        ...

    def changed(self, hostname: str, what: str) -> None:
        """Count and log a change the module made itself (an API call, SQL, ...): re-runs report it."""
        ...

    def note(self, message: str) -> None:
        """A line for install.log and the screen (never pass a secret)."""
        ...

    async def remove(self, hostnames: Sequence[str], plans: Plans, *, purge_data: bool) -> int:
        """Remove these hosts' containers and files (data folders only with purge_data); returns changes."""
        ...

    async def ensure_line(self, hostname: str, path: str, line: str, *, match: str | None = None) -> int:
        """`line` present once in `path` (replacing lines matching regex `match`); returns changes."""
        ...

    async def sysctl(self, hostname: str, key: str, value: str) -> int:
        """Persist in /etc/sysctl.d/99-keybuzz.conf and apply live; returns changes."""
        ...


async def file_sha256(ctx: DeployContext, hostname: str, path: str) -> str:
    """The sha256 of a file on a host, "" when it is absent or unreadable (one argv, no shell)."""
    result = await ctx.host(hostname).run(["sha256sum", "--", path], check=False, timeout=30)
    return result.stdout.split()[0] if result.ok and result.stdout.strip() else ""
