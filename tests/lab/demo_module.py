"""A throwaway module for engine tests: one config file, one secret env file and one small container
(the lab `base` image) on every host. `message` and `per_host` are the "settings" a test changes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.contract import CheckResult, DeployContext, Module
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans
from keybuzz.site.servers import ROLES

if TYPE_CHECKING:
    from keybuzz.site import Site

CONTAINER = "keybuzz-demo"
# A shell that stops at once on SIGTERM (sleep as PID 1 would ignore it and wait the stop timeout).
COMMAND = ("/bin/sh", "-c", 'trap "exit 0" TERM; sleep infinity & wait')


class DemoModule(Module):
    number = 90
    name = "demo"
    title = "engine demo (tests only)"
    companion_roles = ROLES  # every server, whatever its roles

    def __init__(self, message: str = "hello", per_host: Mapping[str, str] | None = None,
                 secret_suffix: str = "", hosts_only: set[str] | None = None):
        self.message = message
        self.per_host = dict(per_host or {})
        self.secret_suffix = secret_suffix
        self.hosts_only = hosts_only

    def hosts(self, site: Site):  # type: ignore[no-untyped-def]
        chosen = super().hosts(site)
        return [s for s in chosen if self.hosts_only is None or s.hostname in self.hosts_only]

    def secret(self, site: Site) -> str:
        """A real site credential (registered for redaction when the site was loaded)."""
        return site.secret("redis", "REDIS_PASSWORD") + self.secret_suffix

    def conf_path(self, site: Site) -> str:
        return f"{site.config_dir(self.name)}/demo.conf"

    def expected(self, hostname: str) -> str:
        return f"message={self.per_host.get(hostname, self.message)}\nhost={hostname}\n"

    def render(self, site: Site) -> Plans:
        root = site.config_dir(self.name)
        data = site.data_dir(self.name) + "/data"
        env = f"{root}/demo.env"
        plans: Plans = {}
        for server in self.hosts(site):
            container = ContainerSpec(
                name=CONTAINER, image=site.image("base"), module=self.name, command=COMMAND, env_file=env,
                mounts=(Mount(self.conf_path(site), "/etc/demo.conf", read_only=True), Mount(data, "/data")),
                restart_on=(self.conf_path(site),))
            plans[server.hostname] = HostPlan(
                server.hostname,
                directories=[DirSpec(root), DirSpec(data, mode=0o750, data=True)],
                files=[FileSpec(self.conf_path(site), self.expected(server.hostname)),
                       FileSpec(env, f"DEMO_PASSWORD={self.secret(site)}\n", secret=True)],
                containers=[container])
        return plans

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        async with ctx.phase("files and containers on every host"):
            await ctx.converge(list(plans), plans)
        async with ctx.phase("health gate"):
            first = sorted(plans)[0]
            await ctx.wait_for(f"{CONTAINER} answering on {first}",
                               lambda: self._answers(ctx, first), timeout=30, interval=0.5)

    async def _answers(self, ctx: DeployContext, hostname: str) -> bool:
        result = await ctx.host(hostname).container_exec(CONTAINER, ["cat", "/etc/demo.conf"], check=False)
        return result.ok and result.stdout == self.expected(hostname)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        per_host = await asyncio.gather(*(self._check_host(ctx, s.hostname) for s in self.hosts(ctx.site)))
        return [check for checks in per_host for check in checks]

    async def _check_host(self, ctx: DeployContext, hostname: str) -> list[CheckResult]:
        host = ctx.host(hostname)
        conf = await host.container_exec(CONTAINER, ["cat", "/etc/demo.conf"], check=False)
        # Compare hashes: the secret itself never goes into an argv.
        env = await host.container_exec(CONTAINER, ["sh", "-c", 'printf %s "$DEMO_PASSWORD" | sha256sum'],
                                        check=False)
        wanted = hashlib.sha256(self.secret(ctx.site).encode()).hexdigest()
        return [CheckResult(f"{hostname} config mounted", conf.stdout == self.expected(hostname), conf.stderr.strip()),
                CheckResult(f"{hostname} secret from env file", env.ok and env.stdout.split()[:1] == [wanted],
                            env.stderr.strip())]
