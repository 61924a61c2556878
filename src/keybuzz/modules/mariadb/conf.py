"""my.cnf and secrets.cnf as rendered, and a parser of MariaDB's option-file format for checks and
tests. No password in my.cnf: the SST user's credentials are in secrets.cnf (0600, the mysql user's),
which my.cnf includes."""

from __future__ import annotations

import configparser

from keybuzz.modules.mariadb import layout
from keybuzz.modules.mariadb.settings import GaleraTuning, MariadbSettings
from keybuzz.site import Site
from keybuzz.site.servers import Server

CLUSTER_NAME = "keybuzz-galera"
PROVIDER = "/usr/lib/galera/libgalera_smm.so"  # the official image and Debian's galera-4 alike
SECTION = "mysqld"  # read by mariadbd, the SST scripts and mariabackup; not by the client tools


def provider_options(site: Site, server: Server) -> str:
    tuning = site.settings(GaleraTuning)
    ip = server.private_ip
    return ";".join((
        f"gmcast.listen_addr=tcp://{ip}:{layout.GALERA_PORT}",  # the private address only
        f"ist.recv_addr={ip}:{layout.IST_PORT}",
        f"gcache.size={tuning.gcache_size}",
        f"evs.suspect_timeout=PT{tuning.suspect_timeout_s}S",
        f"evs.inactive_timeout=PT{tuning.inactive_timeout_s}S",
        # Each node keeps the last primary view on disk: when every member of it comes back after a
        # power loss, they form the primary component again by themselves, from the newest state.
        "pc.recovery=TRUE",
    ))


def my_cnf(site: Site, server: Server) -> str:
    settings = site.settings(MariadbSettings)
    ip = server.private_ip
    peers = ",".join(str(s.private_ip) for s in layout.nodes(site))
    lines = [
        f"# Rendered by keybuzz for {server.hostname}: edits are overwritten on the next install.",
        f"[{SECTION}]",
        f"datadir = {layout.C_DATA_DIR}",
        f"socket = {layout.C_SOCKET}",
        f"bind_address = {ip}",
        f"port = {layout.MYSQL_PORT}",
        "skip_name_resolve = ON",
        "character_set_server = utf8mb4",
        "collation_server = utf8mb4_unicode_ci",
        "default_storage_engine = InnoDB",
        f"max_connections = {settings.max_connections}",
        f"innodb_buffer_pool_size = {settings.innodb_buffer_pool_size}",
        f"innodb_flush_log_at_trx_commit = {settings.innodb_flush_log_at_trx_commit}",
        "innodb_autoinc_lock_mode = 2",  # interleaved: Galera needs it (no table-level AUTO-INC lock)
        "binlog_format = ROW",
        "wsrep_on = ON",
        f"wsrep_provider = {PROVIDER}",
        f"wsrep_cluster_name = {CLUSTER_NAME}",
        f"wsrep_cluster_address = gcomm://{peers}",
        f"wsrep_node_address = {ip}",
        f"wsrep_node_name = {server.hostname}",
        f"wsrep_sst_receive_address = {ip}:{layout.SST_PORT}",
        "wsrep_sst_method = mariabackup",
        f'wsrep_provider_options = "{provider_options(site, server)}"',
        "wsrep_slave_threads = 4",
        # The SST scripts' socat: the joiner listens on every interface unless bound (socat's
        # `bind=`); the donor's connection leaves from this address too.
        "[sst]",
        f"sockopt = bind={ip}",
        f"!include {layout.C_CONF_DIR}/secrets.cnf",
        "",
    ]
    return "\n".join(lines)


def secrets_cnf(site: Site) -> str:
    creds = site.credentials[layout.MODULE]
    return f"[{SECTION}]\nwsrep_sst_auth = {creds['MARIADB_SST_USER']}:{creds['MARIADB_SST_PASSWORD']}\n"


def parse_option_file(text: str) -> dict[str, dict[str, str]]:
    """Sections -> options of a MariaDB option file (`!include` lines skipped, quotes kept)."""
    parser = configparser.ConfigParser(allow_no_value=True, strict=True, interpolation=None,
                                       comment_prefixes=("#", ";"), inline_comment_prefixes=None)
    parser.read_string("\n".join(line for line in text.splitlines() if not line.startswith("!")))
    return {name: dict(parser[name]) for name in parser.sections()}


def includes(text: str) -> list[str]:
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("!include ")]
