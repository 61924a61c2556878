"""SQL as root inside a node's MariaDB container: the `mariadb` client over the local socket
(unix_socket authentication, no password), the statements on stdin, so no value (a password) is
ever in an argv."""

from __future__ import annotations

import hashlib

from keybuzz.contract import DeployContext
from keybuzz.errors import OperationFailed
from keybuzz.modules.mariadb import layout
from keybuzz.secrets import redact


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def ident(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def native_password_hash(password: str) -> str:
    """mysql_native_password's stored form, `*` + SHA1(SHA1(password)) in upper-case hex: compared with
    mysql.user without sending the password anywhere."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


async def mariadb(ctx: DeployContext, hostname: str, sql: str, *, timeout: float = 60.0) -> list[list[str]]:
    """Rows of the statements' results (tab-separated, no headers); raises OperationFailed naming the host."""
    argv = ctx.cli.exec(layout.SERVER_CONTAINER, ["mariadb", f"--socket={layout.C_SOCKET}", "--batch",
                                                  "--skip-column-names", "--raw"], user="root", stdin=True)
    result = await ctx.host(hostname).run(argv, check=False, timeout=timeout, stdin=sql)
    if not result.ok:
        raise OperationFailed(f"SQL on {hostname} failed: {redact(result.stderr.strip())[:300]}",
                              host=hostname, module=layout.MODULE, step="sql")
    return [line.split("\t") for line in result.stdout.splitlines() if line.strip()]


async def wsrep_status(ctx: DeployContext, hostname: str) -> dict[str, str]:
    rows = await mariadb(ctx, hostname, "SHOW GLOBAL STATUS LIKE 'wsrep_%';", timeout=15)
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}
