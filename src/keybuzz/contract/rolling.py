"""Rolling changes of a cluster, written once: one host at a time, the primary last and handed
over first when its container must be recreated, each step gated on the cluster being healthy.

Used for database nodes (PostgreSQL replicas then the leader; Redis replicas then the master),
Sentinels and etcd members (one at a time so the quorum holds), and the HAProxy servers (one at
a time, so the load balancer always keeps one of them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from keybuzz.containers import SPEC_HASH_LABEL
from keybuzz.contract.context import DeployContext
from keybuzz.render import Plans


async def will_recreate(ctx: DeployContext, hostname: str, plans: Plans, container: str) -> bool:
    """The running container's spec-hash label differs from the rendered spec (converge's rule)."""
    plan = plans[hostname]
    wanted = plan.container(container).spec_hash({f.path: f.sha256 for f in plan.files})
    result = await ctx.host(hostname).run(ctx.cli.label(container, SPEC_HASH_LABEL), check=False, timeout=30)
    return result.ok and result.stdout.strip() != wanted


async def roll(ctx: DeployContext, hosts: Sequence[str], plans: Plans, *,
               settled: Callable[[str], Awaitable[object]], what: Callable[[str], str], timeout: float,
               primary: str | None = None, container: str | None = None,
               hand_over: Callable[[str], Awaitable[None]] | None = None,
               before_recreate: Callable[[str], Awaitable[None]] | None = None, gate_unchanged: bool = False,
               label: str = "converge") -> int:
    """Converge `hosts` one at a time, `primary` last; returns the number of changes.

    Before the primary: when `hand_over` is given and its `container` would be recreated, the
    primary role is handed over first (a planned switchover costs ~2 s of writes; killing a
    primary costs the failover timeout). Before any host whose container would be recreated,
    `before_recreate(host)` (e.g. wait until the cluster can lose it). After each host that
    changed (or every host, with `gate_unchanged`): wait until `settled(host)` holds, named
    `what(host)` in a timeout. `container` defaults to the plan's only container. The hosts with
    nothing to change are found first, all at once, and only gated (a no-op re-run visits none)."""
    order = [h for h in hosts if h != primary] + ([primary] if primary in hosts else [])
    due = await ctx.due(order, plans)
    changes = 0
    for host in order:
        if host not in due:  # nothing to change there: no inspection, no converge, no phase of its own
            if gate_unchanged:
                await ctx.wait_for(what(host), lambda host=host: settled(host), timeout=timeout, where=host)
            continue
        watched = container or (plans[host].containers[0].name if len(plans[host].containers) == 1 else None)
        recreate = bool((hand_over or before_recreate) and watched and not ctx.dry_run
                        and await will_recreate(ctx, host, plans, watched))
        if recreate and before_recreate:
            async with ctx.phase(f"make sure {host} can stop"):
                await before_recreate(host)
        if recreate and hand_over and host == primary:
            async with ctx.phase(f"hand the primary role over from {host} before recreating it"):
                await hand_over(host)
        async with ctx.phase(f"{label} {host}" + (" (the primary, last)" if host == primary else "")):
            changed = await ctx.converge([host], plans)
            changes += changed
            if changed or gate_unchanged:
                await ctx.wait_for(what(host), lambda host=host: settled(host), timeout=timeout, where=host)
    return changes
