"""The way in, on the haproxy servers: HAProxy (5432 write, 5433 read) and PgBouncer (6432).

HAProxy asks every node's own Patroni REST API (port 8008): only the leader answers 200 on
/primary, only healthy replicas within the failover lag on /replica. PgBouncer pools in
transaction mode towards the local HAProxy write port, so it follows the leader too. Everything
listens on the server's private address only; the write port also on 127.0.0.1, where PgBouncer
reaches it.
"""

from __future__ import annotations

import re

from keybuzz.haproxy import Section, one_up_rule, render_config
from keybuzz.modules.postgres import layout
from keybuzz.modules.postgres.settings import PatroniTuning
from keybuzz.site import Site
from keybuzz.site.servers import Server

# fastinter/downinter: checks every 250 ms while a server changes state and every 500 ms while it is
# down, so a new leader is UP ~1 s after its promotion instead of ~2 s (measured on switchover).
DEFAULT_SERVER = ("default-server inter 1s fastinter 250ms downinter 500ms fall 3 rise 2 "
                  "on-marked-down shutdown-sessions")
WRITE_BACKEND = "postgres_write"
READ_BACKEND = "postgres_read"
# The seed's PgBouncer pool sizes.
MAX_CLIENT_CONN = 1000
DEFAULT_POOL_SIZE = 25
RESERVE_POOL_SIZE = 5


def haproxy_sections(site: Site, server: Server) -> list[Section]:
    """This haproxy server's frontends on its private address; the write port on 127.0.0.1 too (PgBouncer)."""
    servers = tuple(f"server {s.hostname} {s.private_ip}:{layout.PG_PORT} check port {layout.REST_PORT}"
                    for s in site.with_role("db"))
    lag = site.settings(PatroniTuning).maximum_lag_on_failover
    write = Section("listen", WRITE_BACKEND, (
        f"bind {server.private_ip}:{layout.WRITE_PORT}",
        f"bind 127.0.0.1:{layout.WRITE_PORT}",
        one_up_rule(WRITE_BACKEND),
        "option httpchk GET /primary",
        "http-check expect status 200",
        DEFAULT_SERVER,
        *servers,
    ))
    read = Section("listen", READ_BACKEND, (
        f"bind {server.private_ip}:{layout.READ_PORT}",
        "balance roundrobin",
        f"option httpchk GET /replica?lag={lag}",
        "http-check expect status 200",
        DEFAULT_SERVER,
        *servers,
    ))
    return [write, read]


def haproxy_cfg(site: Site, server: Server) -> str:
    return render_config(haproxy_sections(site, server), address=str(server.private_ip),
                         stats_port=layout.stats_port(site))


def pgbouncer_name(name: str) -> str:
    """A database name as pgbouncer.ini's [databases] key and connect-string value. PgBouncer reads
    [0-9A-Za-z_.-] unquoted, and its parser rejects quoted keys (a known bug, upstream #971): any other
    name is refused here (POSTGRES_NAME values never are)."""
    if not re.fullmatch(r"[0-9A-Za-z_.-]+", name):
        raise ValueError(f"{name!r} cannot be written into pgbouncer.ini")
    return name


def userlist_field(text: str) -> str:
    """A userlist.txt field: double-quoted, a double quote inside written twice (PgBouncer's format)."""
    return '"' + text.replace('"', '""') + '"'


def pgbouncer_ini(site: Site, server: Server) -> str:
    creds = site.credentials.get(layout.MODULE, {})
    app_db = creds.get("POSTGRES_APP_DATABASE", "keybuzz")
    lines = [
        "; Rendered by keybuzz. No secret here: userlist.txt (0600) holds the SCRAM verifier.",
        "[databases]",
        # The local HAProxy write port: always the current leader, no hairpin through the LB.
        f"{pgbouncer_name(app_db)} = host=127.0.0.1 port={layout.WRITE_PORT} dbname={pgbouncer_name(app_db)}",
        "",
        "[pgbouncer]",
        f"listen_addr = {server.private_ip}",
        f"listen_port = {layout.PGBOUNCER_PORT}",
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {layout.C_PGBOUNCER_DIR}/userlist.txt",
        "pool_mode = transaction",
        f"max_client_conn = {MAX_CLIENT_CONN}",
        f"default_pool_size = {DEFAULT_POOL_SIZE}",
        f"reserve_pool_size = {RESERVE_POOL_SIZE}",
        "reserve_pool_timeout = 3",
        "server_connect_timeout = 3",
        "server_login_retry = 1",
        "query_wait_timeout = 30",
        "ignore_startup_parameters = extra_float_digits",
        "pidfile =",
        "",
    ]
    return "\n".join(lines)


def userlist(user: str, scram_verifier: str) -> str:
    """PgBouncer's auth_file line: the SCRAM verifier from pg_authid, never the password."""
    return f"{userlist_field(user)} {userlist_field(scram_verifier)}\n"
