"""proxysql.cnf (libconfig syntax, written with libconf so it parses) and the admin client file.

One writer: `mysql_galera_hostgroups` with max_writers 1 keeps every write on one Galera node
(certification conflicts between writers abort transactions); the other Synced nodes wait in the
backup-writer hostgroup and take over when the writer leaves. Every query goes to the writer
hostgroup by two explicit rules (the seed's two rules sent every SELECT to hostgroup 0): reads
see the application's own writes. The reader hostgroup exists for an application that wants
reads elsewhere and accepts replication lag: add a rule.

Secrets: admin and monitor credentials are in the file, so it is a 0600 secret file; the
application user's password is stored as its mysql_native_password hash, never in clear. The
admin interface listens on 127.0.0.1 only (the seed bound 0.0.0.0:6032), the clients' interface on the
server's private address only (the seed: 0.0.0.0).
"""

from __future__ import annotations

from typing import Any

import libconf

from keybuzz.modules.mariadb import layout as maria_layout
from keybuzz.modules.mariadb.settings import MariadbSettings
from keybuzz.modules.mariadb.sql import native_password_hash
from keybuzz.modules.proxysql import layout
from keybuzz.modules.proxysql.settings import ProxysqlSettings
from keybuzz.site import Site
from keybuzz.site.servers import Server


def document(site: Site, server: Server) -> dict[str, Any]:
    settings = site.settings(ProxysqlSettings)
    maria = site.credentials[maria_layout.MODULE]
    admin = site.credentials[layout.MODULE]
    return {
        "datadir": layout.C_DATA_DIR,
        "admin_variables": {
            "admin_credentials": f"{admin['PROXYSQL_ADMIN_USER']}:{admin['PROXYSQL_ADMIN_PASSWORD']}",
            "mysql_ifaces": f"127.0.0.1:{layout.ADMIN_PORT}",
        },
        "mysql_variables": {
            "threads": settings.threads,
            "max_connections": settings.max_connections,
            "interfaces": f"{server.private_ip}:{layout.CLIENT_PORT}",
            "server_version": "10.11.10-MariaDB",
            "monitor_username": maria["MARIADB_MONITOR_USER"],
            "monitor_password": maria["MARIADB_MONITOR_PASSWORD"],
            "monitor_galera_healthcheck_interval": 1000,
            "monitor_galera_healthcheck_timeout": 800,
            "monitor_galera_healthcheck_max_timeout_count": 2,
            "connect_timeout_server": 1000,
            "default_query_timeout": 36000000,
        },
        "mysql_servers": tuple({"address": str(s.private_ip), "port": maria_layout.MYSQL_PORT,
                                "hostgroup": layout.WRITER_HG, "max_connections": settings.max_connections,
                                "weight": 1000 - i} for i, s in enumerate(maria_layout.nodes(site))),
        "mysql_galera_hostgroups": ({
            "writer_hostgroup": layout.WRITER_HG, "backup_writer_hostgroup": layout.BACKUP_WRITER_HG,
            "reader_hostgroup": layout.READER_HG, "offline_hostgroup": layout.OFFLINE_HG,
            "active": 1, "max_writers": 1, "writer_is_also_reader": 0, "max_transactions_behind": 100,
            "comment": "one Galera writer",
        },),
        "mysql_users": ({
            "username": maria["MARIADB_APP_USER"], "password": native_password_hash(maria["MARIADB_APP_PASSWORD"]),
            "default_hostgroup": layout.WRITER_HG, "default_schema": site.settings(MariadbSettings).database,
            "transaction_persistent": 1, "active": 1,
        },),
        "mysql_query_rules": (
            {"rule_id": 1, "active": 1, "match_digest": r"^SELECT .* FOR UPDATE", "destination_hostgroup":
             layout.WRITER_HG, "apply": 1, "comment": "locking reads: the writer"},
            {"rule_id": 2, "active": 1, "match_digest": r"^SELECT", "destination_hostgroup": layout.WRITER_HG,
             "apply": 1, "comment": "reads: the writer too (read your own writes); point at the reader "
                                    "hostgroup only for reads that accept replication lag"},
        ),
    }


def proxysql_cnf(site: Site, server: Server) -> str:
    return ("# Rendered by keybuzz: edits are overwritten on the next install.\n"
            + libconf.dumps(document(site, server)))


def admin_client_cnf(site: Site) -> str:
    admin = site.credentials[layout.MODULE]
    return (f"[client]\nhost = 127.0.0.1\nport = {layout.ADMIN_PORT}\nuser = {admin['PROXYSQL_ADMIN_USER']}\n"
            f"password = {admin['PROXYSQL_ADMIN_PASSWORD']}\n")


def parse(text: str) -> dict[str, Any]:
    """proxysql.cnf back into Python (tests and lint read what ProxySQL would read)."""
    return libconf.loads(text)
