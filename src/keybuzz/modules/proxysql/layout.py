"""Names, ports and paths of the ProxySQL module."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.haproxy import stats_port as haproxy_stats_port
from keybuzz.site import Site
from keybuzz.site.servers import Server

MODULE = "proxysql"
PROXYSQL_CONTAINER = "proxysql"
STANDIN_CONTAINER = "haproxy-galera"
HAPROXY_SLOT = 4  # the stand-in's HAProxy stats port: the site's haproxy.stats_port + 4

CLIENT_PORT = 3306
ADMIN_PORT = 6032  # ProxySQL's admin interface: 127.0.0.1 only

# ProxySQL hostgroups (mysql_galera_hostgroups).
WRITER_HG = 10
BACKUP_WRITER_HG = 20
READER_HG = 30
OFFLINE_HG = 9999

C_CONF = "/etc/proxysql.cnf"
C_DATA_DIR = "/var/lib/proxysql"


@dataclass(frozen=True)
class HostPaths:
    conf: str
    data: str

    @property
    def proxysql_cnf(self) -> str:
        return f"{self.conf}/proxysql.cnf"

    @property
    def admin_cnf(self) -> str:
        """A client option file with the admin credentials, for keybuzz's checks inside the container."""
        return f"{self.conf}/admin-client.cnf"

    @property
    def haproxy_cfg(self) -> str:
        return f"{self.conf}/haproxy.cfg"


def host_paths(site: Site) -> HostPaths:
    return HostPaths(conf=f"{site.config_dir(MODULE)}/config", data=f"{site.data_dir(MODULE)}/data")


def proxies(site: Site) -> list[Server]:
    return site.with_role("proxysql")


def stats_port(site: Site) -> int:
    return haproxy_stats_port(site.config.haproxy.stats_port, HAPROXY_SLOT)
