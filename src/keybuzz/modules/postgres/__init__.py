"""Module 3: PostgreSQL HA with Patroni (RAFT or etcd), HAProxy and PgBouncer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keybuzz.modules.base import CheckResult, DeployContext, Module
from keybuzz.modules.postgres import checks, cleanup, deploy, render
from keybuzz.modules.postgres.drill import PostgresDrills
from keybuzz.render import Plans

if TYPE_CHECKING:
    from keybuzz.site import Site


class PostgresModule(PostgresDrills, Module):
    number = 3
    name = "postgres"
    title = "PostgreSQL HA (Patroni) + HAProxy + PgBouncer"
    roles = ("db", "haproxy")
    credentials = ("postgres",)
    own_role = "db"

    def requirements(self, site: Site) -> list[str]:
        problems = []
        count = len(site.with_role("db"))
        if count and count < 3:
            problems.append(f"PostgreSQL HA needs 3 db servers (a quorum for the DCS), found {count}")
        if count and site.config.load_balancer_for(5432) is None:
            problems.append("no load balancer in keybuzz.yaml serves port 5432 (the PostgreSQL write path)")
        return problems

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)

    async def cleanup(self, ctx: DeployContext, plans: Plans, purge_data: bool) -> None:
        """The DCS state goes too: etcd keys deleted while etcd runs; the RAFT folder is not a data
        folder, so it is removed with the containers (PostgreSQL data only with purge_data)."""
        async with ctx.phase("delete the DCS state"):
            await cleanup.delete_dcs_keys(ctx)
        await super().cleanup(ctx, plans, purge_data)

MODULE = PostgresModule()

__all__ = ["MODULE", "PostgresModule"]
