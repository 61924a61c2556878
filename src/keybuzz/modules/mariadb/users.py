"""The application database and the accounts, created and kept in step on the primary component
(Galera replicates account statements to every node). Idempotent: SHOW CREATE USER and SHOW GRANTS
are compared first (read in two round trips), so a re-run changes nothing; passwords go only through
the client's stdin.

Accounts: root@localhost (the local socket, or its password: never over the network), the SST user
@localhost (mariabackup on the donor), the application user and the monitoring user from the
private network only (ProxySQL, the health agents and keybuzz's checks connect from there)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from keybuzz.contract import DeployContext
from keybuzz.modules.mariadb import layout, sql
from keybuzz.modules.mariadb.settings import MariadbSettings
from keybuzz.site import Site

SST_PRIVILEGES = ("RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR")
GRANT_LINE = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>\S+) TO ")


@dataclass(frozen=True)
class Account:
    user: str
    host: str
    password: str
    privileges: tuple[str, ...]
    target: str  # `*.*` or `db`.*
    socket_too: bool = False  # root: unix_socket OR the password

    @property
    def name(self) -> str:
        return f"{sql.literal(self.user)}@{sql.literal(self.host)}"


def network_host(site: Site) -> str:
    """The private network as a MariaDB account host: `10.0.0.0/255.255.0.0`."""
    network = ipaddress.IPv4Network(str(site.config.network.cidr))
    return f"{network.network_address}/{network.netmask}"


def accounts(site: Site) -> list[Account]:
    creds = site.credentials[layout.MODULE]
    database = sql.ident(site.settings(MariadbSettings).database) + ".*"
    net = network_host(site)
    return [
        Account("root", "localhost", creds["MARIADB_ROOT_PASSWORD"], ("ALL PRIVILEGES",), "*.*", socket_too=True),
        Account(creds["MARIADB_SST_USER"], "localhost", creds["MARIADB_SST_PASSWORD"], SST_PRIVILEGES, "*.*"),
        Account(creds["MARIADB_APP_USER"], net, creds["MARIADB_APP_PASSWORD"], ("ALL PRIVILEGES",), database),
        Account(creds["MARIADB_MONITOR_USER"], net, creds["MARIADB_MONITOR_PASSWORD"], ("USAGE",), "*.*"),
    ]


def granted(show_grants: list[str], target: str) -> set[str]:
    """The privileges SHOW GRANTS lists on `target` (`*.*` or `` `db`.* ``)."""
    found: set[str] = set()
    for line in show_grants:
        match = GRANT_LINE.match(line)
        if match and match["target"] == target:
            found |= {p.strip().upper() for p in match["privileges"].split(",")}
    return found


def identified(account: Account) -> str:
    password = f"PASSWORD({sql.literal(account.password)})"
    if account.socket_too:
        return f"IDENTIFIED VIA unix_socket OR mysql_native_password USING {password}"
    return f"IDENTIFIED BY {sql.literal(account.password)}"


def split_sections(rows: list[list[str]], marker: str) -> dict[str, list[str]]:
    """The first column of each statement's rows, per section: a `SELECT '<marker> NAME'` row opens each."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for row in rows:
        if len(row) == 1 and row[0].startswith(marker + " "):
            current = sections.setdefault(row[0][len(marker) + 1:], [])
        else:
            current.append(row[0])
    return sections


async def _read(ctx: DeployContext, host: str, wanted: list[Account]) -> dict[str, list[str]]:
    """In two round trips (each an exec in the container): the databases and accounts, then SHOW CREATE USER
    and SHOW GRANTS of the accounts that exist (those statements fail for the others), keyed by the
    account's index in `wanted`."""
    marker = "keybuzz-section"
    head = split_sections(await sql.mariadb(ctx, host, f"SELECT '{marker} databases'; SHOW DATABASES; "
                                                       f"SELECT '{marker} accounts'; "
                                                       "SELECT CONCAT(User, '@', Host) FROM mysql.user;"), marker)
    present = [(i, a) for i, a in enumerate(wanted) if f"{a.user}@{a.host}" in head.get("accounts", [])]
    shown = "".join(f"SELECT '{marker} create {i}'; SHOW CREATE USER {a.name}; "
                    f"SELECT '{marker} grants {i}'; SHOW GRANTS FOR {a.name}; " for i, a in present)
    return head | (split_sections(await sql.mariadb(ctx, host, shown), marker) if shown else {})


async def ensure(ctx: DeployContext, host: str) -> None:
    """The database and every account as the site says, on `host` (a Synced node of the primary)."""
    database = ctx.site.settings(MariadbSettings).database
    wanted = accounts(ctx.site)
    found = await _read(ctx, host, wanted)
    if database not in found.get("databases", []):
        ctx.changed(host, f"database {database} created")
        await sql.mariadb(ctx, host, f"CREATE DATABASE IF NOT EXISTS {sql.ident(database)} "
                                     "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")
    for index, account in enumerate(wanted):
        create = " ".join(found.get(f"create {index}", []))
        statements = []
        if not create:
            statements.append(f"CREATE USER {account.name} {identified(account)};")
            ctx.changed(host, f"account {account.user}@{account.host} created")
        elif sql.native_password_hash(account.password) not in create or (
                account.socket_too and "unix_socket" not in create):
            statements.append(f"ALTER USER {account.name} {identified(account)};")
            ctx.changed(host, f"account {account.user}@{account.host}: password set from credentials")
        grants = granted(found.get(f"grants {index}", []), account.target)
        wanted_privileges = {p.upper() for p in account.privileges} - {"USAGE"}
        if not wanted_privileges <= grants and "ALL PRIVILEGES" not in grants:
            statements.append(f"GRANT {', '.join(account.privileges)} ON {account.target} TO {account.name};")
            ctx.changed(host, f"account {account.user}@{account.host}: "
                              f"{', '.join(sorted(wanted_privileges - grants))} on {account.target} granted")
        if statements:
            await sql.mariadb(ctx, host, "\n".join(statements))
