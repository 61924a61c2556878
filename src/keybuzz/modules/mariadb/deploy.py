"""Ordered, health-gated deploy of the MariaDB Galera module.

- A node in a primary component somewhere: a running cluster. Never a bootstrap: the nodes change
  one at a time, each back to Synced in the primary component before the next.
- No node in a primary component and no data anywhere: a new cluster, bootstrapped on the first
  maria server (deploy's mark in its data folder), then the others join by SST, one at a time.
- No node in a primary component but data: a whole-cluster stop. Every node is stopped, its last
  committed position read (grastate.dat, or `--wsrep-recover` after a crash), and only the node
  with the highest position bootstraps; the others join it (IST). A node whose position cannot be
  read stops the deploy, named: never a guess (`--force-boot mariadb`, typed by the operator,
  bootstraps from the most advanced of the nodes that could be read).

Then the application database and the users (SST, application, monitoring), then the health agents.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from keybuzz.contract import DeployContext
from keybuzz.errors import OperationFailed
from keybuzz.modules.mariadb import bootscript, layout, users
from keybuzz.modules.mariadb.state import NodeState, cluster_problems, via_agent, via_sql
from keybuzz.poll import NotYet
from keybuzz.remote.actions import empty_file_argv
from keybuzz.render import Plans

BOOTSTRAP_TIMEOUT_S = 180
JOIN_TIMEOUT_S = 600  # a joiner's full state transfer (SST) copies the whole data folder
# A joiner still in no group after this long is shut out, not starting: restarted once without its
# saved view (gvwstate.dat keeps the node's UUID over restarts, and peers refuse an evicted UUID).
GCOMM_CLOSED_GRACE_S = 20


@dataclass(frozen=True)
class Position:
    hostname: str
    uuid: str
    seqno: int


class MariadbDeploy:
    def __init__(self, ctx: DeployContext, plans: Plans):
        self.ctx, self.site, self.plans = ctx, ctx.site, plans
        self.nodes = [s.hostname for s in layout.nodes(self.site)]
        self.paths = layout.host_paths(self.site)
        self.whole = f"{len(self.nodes)} Synced nodes in one primary component"
        self._closed_since: dict[str, float] = {}
        self._restarted: set[str] = set()
        self._accounts_ensured = False  # accounts are cluster-wide (Galera replicates them): once per run

    async def _states(self) -> list[NodeState]:
        """Each node's state from its health agent (one HTTP call), or over SQL in its container when the
        agent does not reach mariadbd (not started yet, being replaced): both read the same verdict."""
        async def one(host: str) -> NodeState:
            state = await via_agent(self.site, host)
            return state if state.answering else await via_sql(self.ctx, host)

        return list(await asyncio.gather(*(one(h) for h in self.nodes)))

    async def _ensure_accounts(self, host: str) -> None:
        await users.ensure(self.ctx, host)
        self._accounts_ensured = True

    async def run(self) -> None:
        states = await self._states()
        if any(s.primary for s in states):
            await self._rolling(states)
        elif not await self._any_data():
            await self._new_cluster()
        else:
            await self._cold_start()
        if not self.ctx.dry_run and not self._accounts_ensured:
            async with self.ctx.phase("database and users"):
                await self._ensure_accounts(next(s.hostname for s in await self._states() if s.healthy))

    # --- a running cluster ---------------------------------------------------------------------------------
    async def _rolling(self, states: list[NodeState]) -> None:
        if not self.ctx.dry_run:  # accounts first: a node that joins needs the SST user on its donor
            await self._ensure_accounts(next(s.hostname for s in states if s.primary))
            for state in states:
                if state.gcomm_closed:  # shut out of the running cluster: it never comes back by itself
                    async with self.ctx.phase(f"{state.hostname} joins again (it was in no group)"):
                        await self._restart_without_saved_view(state.hostname)
                        await self.ctx.wait_for(f"{state.hostname} Synced in the primary component",
                                                lambda h=state.hostname: self._joined(h), timeout=JOIN_TIMEOUT_S,
                                                interval=1, where=state.hostname)
        for host in self.nodes:
            async with self.ctx.phase(f"MariaDB on {host}"):
                changed = await self.ctx.converge([host], self.plans)
                if changed:
                    await self.ctx.wait_for(f"{host} Synced in the primary component, then {self.whole}",
                                            self._whole, timeout=JOIN_TIMEOUT_S, interval=1, where=host)

    # --- a new cluster -------------------------------------------------------------------------------------
    async def _any_data(self) -> bool:
        for host in self.nodes:
            result = await self.ctx.host(host).run(["test", "-e", self.paths.grastate], check=False, timeout=30)
            if result.ok:
                return True
        return False

    async def _new_cluster(self) -> None:
        first, *others = self.nodes
        async with self.ctx.phase(f"new cluster: bootstrap on {first}"):
            await self._bootstrap(first)
        await self._join(others)

    async def _bootstrap(self, host: str) -> None:
        await self.ctx.converge([host], {host: self.plans[host].without_containers(layout.SERVER_CONTAINER)})
        if not self.ctx.dry_run:
            await self.ctx.host(host).run(empty_file_argv(f"{self.paths.data}/{bootscript.MARK}"), stdin="", timeout=30)
        self.ctx.changed(host, "bootstrap a new primary component here (--wsrep-new-cluster, once)")
        await self.ctx.converge([host], self.plans)
        await self.ctx.wait_for(f"{host} Synced in a new primary component", lambda: self._healthy(host),
                                timeout=BOOTSTRAP_TIMEOUT_S, interval=1, where=host)
        if not self.ctx.dry_run:
            await self._ensure_accounts(host)  # the SST user must exist before anyone joins

    async def _join(self, hosts: list[str]) -> None:
        for host in hosts:
            async with self.ctx.phase(f"{host} joins (state transfer)"):
                await self.ctx.converge([host], self.plans)
                await self.ctx.wait_for(f"{host} Synced in the primary component", lambda h=host: self._joined(h),
                                        timeout=JOIN_TIMEOUT_S, interval=1, where=host)

    async def _joined(self, host: str) -> bool:
        """Synced in the primary component; a joiner left in no group for GCOMM_CLOSED_GRACE_S is restarted
        once without its saved view (the message then says so)."""
        state = await via_sql(self.ctx, host)
        if state.healthy:
            return True
        if not state.gcomm_closed:
            self._closed_since.pop(host, None)
        elif time.monotonic() - self._closed_since.setdefault(host, time.monotonic()) > GCOMM_CLOSED_GRACE_S \
                and host not in self._restarted and not self.ctx.dry_run:
            await self._restart_without_saved_view(host)
        raise NotYet(state.summary + ("; restarted once without its saved view" if host in self._restarted else ""))

    async def _restart_without_saved_view(self, host: str) -> None:
        self._restarted.add(host)
        self.ctx.changed(host, f"restart {layout.SERVER_CONTAINER} without {self.paths.gvwstate}: the node was in "
                         "no group (a saved node UUID its peers evicted keeps it out for good)")
        node = self.ctx.host(host)
        await node.run(self.ctx.cli.stop(layout.SERVER_CONTAINER, timeout_s=60), check=False, timeout=120)
        await self._forget_saved_view(host)
        await node.run(self.ctx.cli.start(layout.SERVER_CONTAINER), timeout=120)

    async def _forget_saved_view(self, host: str) -> None:
        """gvwstate.dat removed while the node is stopped: it joins as a new member, with a new UUID."""
        await self.ctx.host(host).run(["rm", "-f", self.paths.gvwstate], timeout=30)

    # --- a whole-cluster stop -----------------------------------------------------------------------------
    async def _cold_start(self) -> None:
        async with self.ctx.phase("no primary component: stop every node and read its last position"):
            if self.ctx.dry_run:
                self.ctx.note("dry-run: would stop every node, read each last committed position and bootstrap "
                              "the most advanced")
                return
            for host in self.nodes:
                await self.ctx.host(host).run(self.ctx.cli.stop(layout.SERVER_CONTAINER, timeout_s=60), check=False,
                                              timeout=120)
            # The rendered files first (a changed my.cnf applies), still without the server running.
            await self.ctx.converge(self.nodes, {h: self.plans[h].without_containers(layout.SERVER_CONTAINER)
                                                 for h in self.nodes})
            positions, unreadable = [], []
            for host in self.nodes:
                try:
                    found = await self._position(host)
                except OperationFailed as exc:
                    unreadable.append(f"{host}: {exc}")
                    continue
                if found:
                    positions.append(found)
                self.ctx.note(f"{host}: last committed position "
                              + (f"{found.uuid}:{found.seqno}" if found else "none (empty data folder)"))
            if unreadable and layout.MODULE not in self.ctx.force_boot:
                raise OperationFailed(
                    "no node is in a primary component and the last position of "
                    + "; ".join(unreadable) + " could not be read: nothing was started. Bring that node back or "
                    "fix its data, then re-run; to bootstrap from the most advanced of the others instead, run "
                    "`keybuzz install --only mariadb --force-boot mariadb` (it can lose that node's last commits)",
                    module=layout.MODULE, step="cold start")
            chosen = most_advanced(positions)
            # One primary component is bootstrapped and the others join it: a saved view is obsolete,
            # and the node UUID it restores may be on a peer's evict list (then it never joins).
            for host in self.nodes:
                await self._forget_saved_view(host)
            self.ctx.note("saved primary views (gvwstate.dat) removed: every node joins the bootstrapped one")
        async with self.ctx.phase(f"cold start: bootstrap on {chosen.hostname} (seqno {chosen.seqno}, the highest)"):
            await self._bootstrap(chosen.hostname)
        await self._join([h for h in self.nodes if h != chosen.hostname])

    async def _position(self, host: str) -> Position | None:
        spec = self.plans[host].container(layout.SERVER_CONTAINER)
        argv = self.ctx.cli.once(spec, ["/bin/sh", layout.C_SCRIPT, "position"])
        result = await self.ctx.host(host).run(argv, check=False, timeout=300)
        if not result.ok:
            raise OperationFailed(f"reading its position failed: {(result.stderr or result.stdout).strip()[-300:]}",
                                  host=host, module=layout.MODULE, step="position")
        try:
            parsed = bootscript.parse_position(result.stdout)
        except ValueError as exc:
            raise OperationFailed(str(exc), host=host, module=layout.MODULE, step="position") from None
        return Position(host, *parsed) if parsed else None

    # --- gates ---------------------------------------------------------------------------------------------
    async def _healthy(self, host: str) -> bool:
        state = await via_sql(self.ctx, host)
        if not state.healthy:
            raise NotYet(state.summary)
        return True

    async def _whole(self) -> bool:
        problems = cluster_problems(self.site, [await via_sql(self.ctx, h) for h in self.nodes])
        if problems:
            raise NotYet("; ".join(problems))
        return True


def most_advanced(positions: list[Position]) -> Position:
    """The node to bootstrap from: the highest seqno of one cluster history (ties: the first listed)."""
    if not positions:
        raise OperationFailed("no node has a data folder with a position: nothing to start from",
                              module=layout.MODULE, step="cold start")
    histories = {p.uuid for p in positions}
    if len(histories) > 1:
        raise OperationFailed("the nodes' data folders belong to different cluster histories ("
                              + ", ".join(f"{p.hostname} {p.uuid}" for p in positions)
                              + "): keybuzz will not pick one; keep the right one and empty the others",
                              module=layout.MODULE, step="cold start")
    best = max(p.seqno for p in positions)
    return next(p for p in positions if p.seqno == best)


async def deploy(ctx: DeployContext, plans: Plans) -> None:
    await MariadbDeploy(ctx, plans).run()
