"""Names, ports and paths of the PostgreSQL module: one place, shared by render, deploy and checks."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.haproxy import stats_port as haproxy_stats_port
from keybuzz.render import ImageUser
from keybuzz.site import Site

MODULE = "postgres"
SCOPE = "keybuzz-postgres"
NAMESPACE = "/keybuzz/"

PATRONI_CONTAINER = "patroni"
ETCD_CONTAINER = "etcd-postgres"
HAPROXY_CONTAINER = "haproxy-postgres"
PGBOUNCER_CONTAINER = "pgbouncer"

PG_PORT = 5432
REST_PORT = 8008
RAFT_PORT = 5000
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
WRITE_PORT = 5432
READ_PORT = 5433
PGBOUNCER_PORT = 6432
HAPROXY_SLOT = 0  # this module's HAProxy stats port: the site's haproxy.stats_port + 0

# The user PostgreSQL and Patroni run as inside the image; its uid is read from the image at
# deploy time (100 in a Debian rootfs, 999 in the official postgres image) and owns the data dirs.
IMAGE_USER = "postgres"

# Paths inside the Patroni container.
C_CONFIG_DIR = "/etc/patroni"
C_CONFIG = f"{C_CONFIG_DIR}/patroni.yml"
C_DATA_MOUNT = "/var/lib/postgresql/data"
C_PGDATA = f"{C_DATA_MOUNT}/pgdata"  # a sub-directory: Patroni may remove and re-create it
C_WAL_MOUNT = "/var/lib/postgresql/wal"
C_WALDIR = f"{C_WAL_MOUNT}/pg_wal"
C_RAFT_DIR = "/var/lib/patroni/raft"
C_ETCD_DIR = "/var/lib/etcd"
C_SOCKET_DIR = "/tmp"  # exists and is writable in every image, unlike /run/postgresql
C_PGBOUNCER_DIR = "/etc/pgbouncer"


@dataclass(frozen=True)
class HostPaths:
    """Where the module's files live on a server (seed: /opt/keybuzz/postgres/{data,wal,config})."""

    data: str
    wal: str
    raft: str
    etcd: str
    config: str
    secrets: str
    haproxy: str
    pgbouncer: str

    @property
    def patroni_yml(self) -> str:
        return f"{self.config}/patroni.yml"

    @property
    def patroni_env(self) -> str:
        return f"{self.secrets}/patroni.env"

    @property
    def haproxy_cfg(self) -> str:
        return f"{self.haproxy}/haproxy.cfg"

    @property
    def pgbouncer_ini(self) -> str:
        return f"{self.pgbouncer}/pgbouncer.ini"

    @property
    def userlist(self) -> str:
        return f"{self.pgbouncer}/userlist.txt"


def host_paths(site: Site) -> HostPaths:
    data, config = site.data_dir(MODULE), site.config_dir(MODULE)
    return HostPaths(data=f"{data}/data", wal=f"{data}/wal", raft=f"{data}/raft", etcd=f"{data}/etcd",
                     config=f"{config}/config", secrets=f"{config}/secrets", haproxy=f"{config}/haproxy",
                     pgbouncer=f"{config}/pgbouncer")


def image_user(site: Site, image_key: str) -> ImageUser:
    """The image's postgres user, owner of what the container writes (data dirs, userlist.txt)."""
    return ImageUser(site.image(image_key), IMAGE_USER)


def stats_port(site: Site) -> int:
    return haproxy_stats_port(site.config.haproxy.stats_port, HAPROXY_SLOT)
