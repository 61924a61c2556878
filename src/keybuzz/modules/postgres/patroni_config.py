"""patroni.yml and its secret env file: the seed's settings, corrected (see docs/postgres.md).

Secrets never appear in patroni.yml: Patroni reads them from PATRONI_* environment variables
(--env-file, 0600). Everything that must be equal on every node lives in the DCS section, so it
is changed later through Patroni's PATCH /config, never by rewriting files and restarting.
"""

from __future__ import annotations

from typing import Any

import yaml

from keybuzz.modules.postgres import layout
from keybuzz.modules.postgres.settings import PG_STAT_STATEMENTS, PatroniTuning, PostgresTuning
from keybuzz.site import Site
from keybuzz.site.servers import Server

# What initdb is told (bootstrap) and what validate expects of every database.
ENCODING = "UTF8"
LOCALE = "C.UTF-8"


def dcs_settings(site: Site) -> dict[str, Any]:
    """The cluster-wide (DCS) configuration: bootstrap.dcs at first start, PATCH /config later."""
    patroni, pg = site.settings(PatroniTuning), site.settings(PostgresTuning)
    preload = {"shared_preload_libraries": ",".join(pg.preload_libraries)}
    if PG_STAT_STATEMENTS in pg.preload_libraries:
        preload["pg_stat_statements.track"] = "all"
    return {
        "ttl": patroni.ttl,
        "loop_wait": patroni.loop_wait,
        "retry_timeout": patroni.retry_timeout,
        "maximum_lag_on_failover": patroni.maximum_lag_on_failover,
        "synchronous_mode": patroni.synchronous_mode,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "max_connections": pg.max_connections,
                "shared_buffers": pg.shared_buffers,
                "effective_cache_size": pg.effective_cache_size,
                "work_mem": pg.work_mem,
                "maintenance_work_mem": pg.maintenance_work_mem,
                "wal_keep_size": pg.wal_keep_size,
                "min_wal_size": pg.min_wal_size,
                "max_wal_size": pg.max_wal_size,
                "wal_level": "replica",
                "wal_log_hints": "on",  # pg_rewind needs it (or data checksums, which initdb also enables)
                "hot_standby": "on",
                "hot_standby_feedback": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "max_worker_processes": 8,
                "max_parallel_workers": 8,
                "max_parallel_workers_per_gather": 4,
                "max_parallel_maintenance_workers": 4,
                "wal_buffers": "16MB",
                "checkpoint_completion_target": 0.9,
                "default_statistics_target": 100,
                "random_page_cost": 1.1,
                "effective_io_concurrency": 200,
                "password_encryption": "scram-sha-256",
                # pgvector is an extension created per database, not a preloaded library.
                **preload,
                "logging_collector": "off",  # logs to stderr: the container log
                "log_line_prefix": "%m [%p] %q%u@%d ",
                "log_connections": "on",
                "log_disconnections": "on",
                "log_lock_waits": "on",
                "log_min_duration_statement": 1000,
            },
        },
    }


def hba_name(name: str) -> str:
    """A role or database name as a pg_hba.conf field: double-quoted, so it is that name and never a keyword
    (`all`, `replication`, `+group`, `@file`). Names are POSTGRES_NAME values (no quote inside), checked here
    again because a quote would end the field."""
    if not name or '"' in name or any(c.isspace() for c in name):
        raise ValueError(f"{name!r} cannot be a pg_hba.conf name")
    return f'"{name}"'


def pg_hba(site: Site) -> list[str]:
    """Only the roles that need it, from where they need it; scram-sha-256 for every password."""
    creds = site.credentials.get(layout.MODULE, {})
    superuser = hba_name(creds.get("POSTGRES_SUPERUSER_USER", "postgres"))
    replicator = hba_name(creds.get("POSTGRES_REPLICATION_USER", "replicator"))
    rewind = hba_name(creds.get("POSTGRES_REWIND_USER", "rewind_user"))
    app_user = hba_name(creds.get("POSTGRES_APP_USER", "keybuzz"))
    app_db = hba_name(creds.get("POSTGRES_APP_DATABASE", "keybuzz"))
    monitor = hba_name(creds.get("POSTGRES_MONITOR_USER", "keybuzz_monitor"))
    db_ips = [str(s.private_ip) for s in site.with_role("db")]
    lines = [
        f"local all {superuser} peer",
        f"host all {superuser} 127.0.0.1/32 scram-sha-256",
        # Patroni 4 replicas also open a replication connection to localhost.
        f"host replication {replicator} 127.0.0.1/32 scram-sha-256",
    ]
    lines += [f"host replication {replicator} {ip}/32 scram-sha-256" for ip in db_ips]
    maintenance_db = hba_name("postgres")
    lines += [f"host {maintenance_db} {rewind} {ip}/32 scram-sha-256" for ip in db_ips]
    # The metrics exporter runs on each db server and reads its own node.
    lines += [f"host {maintenance_db} {monitor} {ip}/32 scram-sha-256" for ip in db_ips]
    lines.append(f"host {app_db} {app_user} {site.config.network.cidr} scram-sha-256")
    return lines


def is_bootstrap_node(site: Site, server: Server) -> bool:
    """Only the first db server (the seed's db-master-01) has a `bootstrap` section: Patroni lets
    only such a node initialise a cluster, so the first leader is deterministic even though the
    DCS (RAFT or etcd) needs 2 of 3 nodes running before anyone can take a lock."""
    return site.with_role("db")[0].hostname == server.hostname


def patroni_document(site: Site, server: Server) -> dict[str, Any]:
    ip = str(server.private_ip)
    peers = [s for s in site.with_role("db") if s.hostname != server.hostname]
    dcs_kind = site.settings(PatroniTuning).dcs
    doc: dict[str, Any] = {
        "scope": layout.SCOPE,
        "namespace": layout.NAMESPACE,
        "name": server.hostname,
        "log": {"level": "INFO"},
        # restapi.authentication comes from PATRONI_RESTAPI_USERNAME/PASSWORD: it guards the
        # unsafe endpoints (PATCH /config, POST /switchover, /restart, /reinitialize ...).
        "restapi": {"listen": f"{ip}:{layout.REST_PORT}", "connect_address": f"{ip}:{layout.REST_PORT}"},
    }
    if dcs_kind == "raft":
        # bind_addr: without it pysyncobj listens on 0.0.0.0 (every interface).
        doc["raft"] = {"data_dir": layout.C_RAFT_DIR, "self_addr": f"{ip}:{layout.RAFT_PORT}",
                       "bind_addr": f"{ip}:{layout.RAFT_PORT}",
                       "partner_addrs": [f"{p.private_ip}:{layout.RAFT_PORT}" for p in peers]}
    else:
        doc["etcd3"] = {"protocol": "http",
                        "hosts": [f"{s.private_ip}:{layout.ETCD_CLIENT_PORT}" for s in site.with_role("db")]}
    if is_bootstrap_node(site, server):
        doc["bootstrap"] = {
            "dcs": dcs_settings(site),
            "initdb": [{"encoding": ENCODING}, {"locale": LOCALE}, "data-checksums", {"waldir": layout.C_WALDIR}],
        }
    doc["postgresql"] = {
        "listen": f"{ip},127.0.0.1:{layout.PG_PORT}",
        "connect_address": f"{ip}:{layout.PG_PORT}",
        "data_dir": layout.C_PGDATA,
        "pgpass": "/tmp/pgpass",
        "use_unix_socket": True,
        # authentication (superuser, replication, rewind) comes from PATRONI_* variables.
        "parameters": {"unix_socket_directories": layout.C_SOCKET_DIR},
        "basebackup": [{"waldir": layout.C_WALDIR}, {"checkpoint": "fast"}],
        "pg_hba": pg_hba(site),
    }
    doc["tags"] = {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False}
    # No /dev/watchdog inside containers; see docs/postgres.md for the production advice.
    doc["watchdog"] = {"mode": "off"}
    return doc


def patroni_yml(site: Site, server: Server) -> str:
    header = "# Rendered by keybuzz: no secret here (PATRONI_* variables in the 0600 env file).\n"
    return header + yaml.safe_dump(patroni_document(site, server), sort_keys=False, default_flow_style=False)


def patroni_env(site: Site) -> str:
    """The secret env file read by the container CLI (never mounted, never in argv)."""
    creds = site.credentials[layout.MODULE]
    values = {
        "PATRONI_SUPERUSER_USERNAME": creds["POSTGRES_SUPERUSER_USER"],
        "PATRONI_SUPERUSER_PASSWORD": creds["POSTGRES_SUPERUSER_PASSWORD"],
        "PATRONI_REPLICATION_USERNAME": creds["POSTGRES_REPLICATION_USER"],
        "PATRONI_REPLICATION_PASSWORD": creds["POSTGRES_REPLICATION_PASSWORD"],
        "PATRONI_REWIND_USERNAME": creds["POSTGRES_REWIND_USER"],
        "PATRONI_REWIND_PASSWORD": creds["POSTGRES_REWIND_PASSWORD"],
        "PATRONI_RESTAPI_USERNAME": creds["PATRONI_RESTAPI_USER"],
        "PATRONI_RESTAPI_PASSWORD": creds["PATRONI_RESTAPI_PASSWORD"],
    }
    if site.settings(PatroniTuning).dcs == "raft":
        values["PATRONI_RAFT_PASSWORD"] = creds["PATRONI_RAFT_PASSWORD"]
    return "".join(f"{key}={value}\n" for key, value in values.items())
