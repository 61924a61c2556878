"""SQL as the superuser inside the leader's Patroni container: psql over the local socket (peer
auth), the statements on stdin, so no value (password, verifier) is ever in an argv."""

from __future__ import annotations

from keybuzz.contract import DeployContext
from keybuzz.errors import OperationFailed
from keybuzz.modules.postgres import layout
from keybuzz.secrets import redact


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


async def psql(ctx: DeployContext, hostname: str, sql: str, *, database: str = "postgres",
               timeout: float = 60.0) -> list[str]:
    """Rows of the last statements, unaligned (-At); raises OperationFailed naming the host."""
    superuser = ctx.site.credentials[layout.MODULE]["POSTGRES_SUPERUSER_USER"]
    argv = ctx.cli.exec(layout.PATRONI_CONTAINER, ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h",
                                                    layout.C_SOCKET_DIR, "-p", str(layout.PG_PORT), "-U", superuser,
                                                    "-d", database], user=layout.IMAGE_USER, stdin=True)
    result = await ctx.host(hostname).run(argv, check=False, timeout=timeout, stdin=sql)
    if not result.ok:
        raise OperationFailed(f"psql on {hostname} failed: {redact(result.stderr.strip())[:300]}",
                              host=hostname, module=layout.MODULE, step="sql")
    return [line for line in result.stdout.splitlines() if line.strip()]


async def scram_verifier(ctx: DeployContext, leader: str, role: str) -> str | None:
    """The role's SCRAM secret from pg_authid (for PgBouncer's auth_file); redacted everywhere."""
    rows = await psql(ctx, leader, f"SELECT rolpassword FROM pg_authid WHERE rolname = {literal(role)};")
    if not rows or not rows[0].startswith("SCRAM-SHA-256$"):
        return None
    redact.add(rows[0])
    return rows[0]
