"""Names, ports and paths of the Redis module: one place, shared by render, deploy, checks and drills."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.haproxy import stats_port as haproxy_stats_port
from keybuzz.site import Site
from keybuzz.site.servers import Server

MODULE = "redis"
MASTER_NAME = "kb-redis-master"  # the seed's Sentinel master name

SERVER_CONTAINER = "redis"
SENTINEL_CONTAINER = "redis-sentinel"
HAPROXY_CONTAINER = "haproxy-redis"

REDIS_PORT = 6379
SENTINEL_PORT = 26379
HAPROXY_SLOT = 1  # this module's HAProxy stats port: the site's haproxy.stats_port + 1
# Loopback ports of the per-node "gate" frontends inside haproxy-redis (see lb.py).
GATE_PORT_BASE = 16380

# Paths inside the containers.
C_CONF_DIR = "/etc/keybuzz"
C_DATA_DIR = "/data"  # the host's data folder, root-owned; each process has its own sub-folder
C_SERVER_DIR = f"{C_DATA_DIR}/server"  # redis-server: AOF, RDB and the runtime redis.conf
C_SENTINEL_DIR = f"{C_DATA_DIR}/sentinel"  # Sentinel: the sentinel.conf it rewrites
C_SCRIPT = f"{C_CONF_DIR}/keybuzz-redis.sh"


@dataclass(frozen=True)
class HostPaths:
    """Where the module's files live on a server (seed: /opt/keybuzz/redis/{data,conf})."""

    conf: str
    secrets: str
    haproxy: str
    data: str

    @property
    def redis_conf(self) -> str:
        return f"{self.conf}/redis.conf"

    @property
    def sentinel_conf(self) -> str:
        return f"{self.conf}/sentinel.conf"

    @property
    def script(self) -> str:
        return f"{self.conf}/keybuzz-redis.sh"

    @property
    def env_file(self) -> str:
        return f"{self.secrets}/redis.env"

    @property
    def haproxy_cfg(self) -> str:
        return f"{self.haproxy}/haproxy.cfg"


def host_paths(site: Site) -> HostPaths:
    data, config = site.data_dir(MODULE), site.config_dir(MODULE)
    return HostPaths(conf=f"{config}/conf", secrets=f"{config}/secrets", haproxy=f"{config}/haproxy",
                     data=f"{data}/data")


def redis_servers(site: Site) -> list[Server]:
    return site.with_role("redis")


def initial_master(site: Site) -> Server:
    """redis-01 (the first redis server of servers.tsv) is the master of a new cluster."""
    return redis_servers(site)[0]


def quorum(site: Site) -> int:
    return len(redis_servers(site)) // 2 + 1


def stats_port(site: Site) -> int:
    return haproxy_stats_port(site.config.haproxy.stats_port, HAPROXY_SLOT)


def vip(site: Site) -> str | None:
    return site.config.vip_for(REDIS_PORT)


def hostname_of(site: Site, ip: str) -> str:
    return site.hostname_at(ip) or ip
