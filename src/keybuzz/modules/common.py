"""Helpers several modules share on top of the DeployContext."""

from __future__ import annotations

from keybuzz.containers import SPEC_HASH_LABEL
from keybuzz.modules.base import DeployContext
from keybuzz.render import HostPlan


async def will_recreate(ctx: DeployContext, hostname: str, plan: HostPlan, container: str) -> bool:
    """The running container's spec-hash label differs from the rendered spec (converge's rule):
    a primary about to be recreated hands its role over first."""
    wanted = plan.container(container).spec_hash({f.path: f.sha256 for f in plan.files})
    result = await ctx.host(hostname).run(
        [ctx.site.config.container_cli, "inspect", "--format", f'{{{{index .Config.Labels "{SPEC_HASH_LABEL}"}}}}',
         container], check=False, timeout=30)
    return result.ok and result.stdout.strip() != wanted
