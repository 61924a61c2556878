"""PyMySQL as the application user, with its own short timeouts, autocommit and no retries, so checks
and drills see what really happens. The password goes straight to PyMySQL, never into a log line."""

from __future__ import annotations

import pymysql

from keybuzz.modules.mariadb import layout
from keybuzz.modules.mariadb.settings import MariadbSettings
from keybuzz.site import Site


def connect(site: Site, host: str, *, port: int = layout.MYSQL_PORT, timeout: float = 2.0,
            password: str | None = None) -> pymysql.connections.Connection:
    creds = site.credentials[layout.MODULE]
    return pymysql.connect(host=host, port=port, user=creds["MARIADB_APP_USER"],
                           password=creds["MARIADB_APP_PASSWORD"] if password is None else password,
                           database=site.settings(MariadbSettings).database, autocommit=True,
                           connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)


def query(site: Site, host: str, statement: str, args: tuple[object, ...] = (), *, port: int = layout.MYSQL_PORT,
          timeout: float = 2.0) -> list[tuple[object, ...]]:
    """One statement on a fresh connection; its rows."""
    connection = connect(site, host, port=port, timeout=timeout)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())
    finally:
        connection.close()
