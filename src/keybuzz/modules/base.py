"""The module contract: render is pure; deploy, validate and cleanup run through a DeployContext.

A module's deploy is a sequence of health-gated phases written as plain async code:

    async with ctx.phase("start first node"):
        await ctx.converge([first], plans)
        await ctx.wait_for("leader elected", lambda: self._has_leader(ctx), timeout=60)

The engine (keybuzz.engine) implements DeployContext identically for the lab and for real
servers; in dry-run, converge prints diffs and changes nothing, and gates are skipped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from keybuzz.render import Plans

if TYPE_CHECKING:
    from keybuzz.site import Site
    from keybuzz.site.servers import Server


@dataclass(frozen=True)
class RunResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class CheckResult:
    """One validation check. `available=False` says the check cannot run with this image/site."""

    name: str
    ok: bool
    detail: str = ""
    available: bool = True


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

    def host(self, hostname: str) -> HostHandle: ...

    def phase(self, name: str) -> AbstractAsyncContextManager[None]: ...

    async def converge(self, hostnames: Sequence[str], plans: Plans) -> int:
        """Apply the plans of these hosts in parallel; returns the number of changes."""
        ...

    async def wait_for(self, what: str, probe: Callable[[], Awaitable[bool]], *, timeout: float,
                       interval: float = 1.0) -> None:
        """Health gate: poll probe until True; raise OperationFailed naming `what` on timeout."""
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


class NotLanded(Exception):
    """The module's issue has not landed: said plainly instead of rendering nothing."""


class Module(ABC):
    number: int
    name: str
    title: str
    roles: tuple[str, ...]
    credentials: tuple[str, ...] = ()
    implemented: bool = True
    # The role that makes the module exist (db for postgres); its other roles (haproxy) are
    # companions that get its load balancer only when servers of this role exist.
    own_role: str | None = None

    def hosts(self, site: Site) -> list[Server]:
        if self.own_role and not site.with_role(self.own_role):
            return []
        return [s for s in site.servers if any(s.has(r) for r in self.roles)]

    def requirements(self, site: Site) -> list[str]:
        """Problems with the inventory for this module (missing companion roles...)."""
        return []

    @abstractmethod
    def render(self, site: Site) -> Plans:
        """Pure: the files and containers per host."""

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        async with ctx.phase("converge all hosts"):
            await ctx.converge(list(plans), plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return []

    async def cleanup(self, ctx: DeployContext, plans: Plans, purge_data: bool) -> None:
        """Remove what deploy made. Override to also wipe outside state (e.g. DCS keys), then call super()."""
        async with ctx.phase("remove containers and files" + (" and data" if purge_data else "")):
            await ctx.remove(list(plans), plans, purge_data=purge_data)


class PendingModule(Module):
    """A seed module whose issue has not landed yet."""

    implemented = False

    def __init__(self, number: int, name: str, title: str, roles: tuple[str, ...]):
        self.number, self.name, self.title, self.roles = number, name, title, roles

    def render(self, site: Site) -> Plans:
        raise NotLanded(f"module {self.number} {self.name} ({self.title}) is not implemented yet: "
                        "nothing is rendered or installed for it")
