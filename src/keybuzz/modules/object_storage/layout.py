"""Names, ports and paths of the object storage module: one place, shared by render, deploy, checks and drills."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.haproxy import stats_port as haproxy_stats_port
from keybuzz.modules.object_storage.settings import OPS_BUCKET, ObjectStorageSettings
from keybuzz.site import Site
from keybuzz.site.servers import Server

MODULE = "minio"  # the seed's module name and servers.tsv role; `keybuzz validate minio` whatever the backend
ROLE = "minio"

HAPROXY_CONTAINER = "haproxy-minio"
HAPROXY_SLOT = 3  # this module's HAProxy stats port: the site's haproxy.stats_port + 3
BACKEND = "s3"

# SeaweedFS: one container per component on every storage server.
MASTER = "seaweedfs-master"
VOLUME = "seaweedfs-volume"
FILER = "seaweedfs-filer"
GATEWAY = "seaweedfs-s3"
PEERWATCH = "seaweedfs-peerwatch"
SEAWEEDFS_CONTAINERS = (MASTER, VOLUME, FILER, GATEWAY, PEERWATCH)
MASTER_PORT, VOLUME_PORT, FILER_PORT, S3_PORT = 9333, 8080, 8888, 8333
GRPC_OFFSET = 10000  # SeaweedFS serves gRPC on each HTTP port + 10000

# MinIO (the seed's release): one container per storage server.
MINIO_CONTAINER = "minio"
MINIO_PORT = 9000

# Paths inside the containers.
C_DATA = "/data"
C_WEED = "/usr/bin/weed"  # where the upstream image and the lab image keep the binary
C_SEAWEEDFS = "/etc/seaweedfs"  # SeaweedFS reads security.toml and filer.toml here
C_SECURITY = f"{C_SEAWEEDFS}/security.toml"
C_FILER_TOML = f"{C_SEAWEEDFS}/filer.toml"
C_IDENTITIES = f"{C_SEAWEEDFS}/identities.json"
C_PEERWATCH = "/etc/keybuzz/peerwatch.sh"


@dataclass(frozen=True)
class HostPaths:
    """Where the module's files live on a server (seed: /opt/keybuzz/minio/data)."""

    data: str  # MinIO's drive; SeaweedFS keeps master/, volume/ and filer/ under seaweedfs/
    seaweedfs: str
    conf: str
    secrets: str
    haproxy: str

    def component(self, name: str) -> str:
        return f"{self.seaweedfs}/{name}"

    @property
    def filer_toml(self) -> str:
        return f"{self.conf}/filer.toml"

    @property
    def peerwatch(self) -> str:
        return f"{self.conf}/peerwatch.sh"

    @property
    def security(self) -> str:
        return f"{self.secrets}/security.toml"

    @property
    def identities(self) -> str:
        return f"{self.secrets}/identities.json"

    @property
    def minio_env(self) -> str:
        return f"{self.secrets}/minio.env"

    @property
    def haproxy_cfg(self) -> str:
        return f"{self.haproxy}/haproxy.cfg"


def host_paths(site: Site) -> HostPaths:
    data, config = site.data_dir(MODULE), site.config_dir(MODULE)
    return HostPaths(data=f"{data}/data", seaweedfs=f"{data}/seaweedfs", conf=f"{config}/conf",
                     secrets=f"{config}/secrets", haproxy=f"{config}/haproxy")


def settings(site: Site) -> ObjectStorageSettings:
    return site.settings(ObjectStorageSettings)


def storage_servers(site: Site) -> list[Server]:
    return site.with_role(ROLE)


def buckets(site: Site) -> list[str]:
    """The site's buckets and keybuzz's admin-only one, created once by deploy."""
    return [*settings(site).buckets, OPS_BUCKET]


def gateway_port(site: Site) -> int:
    """The S3 port of every storage server (HAProxy's backend, direct connections)."""
    return S3_PORT if settings(site).backend == "seaweedfs" else MINIO_PORT


def gateway_url(site: Site, server: Server) -> str:
    return f"http://{server.private_ip}:{gateway_port(site)}"


def vip(site: Site) -> str | None:
    return site.config.vip_for(settings(site).port)


def vip_url(site: Site) -> str | None:
    address = vip(site)
    return f"http://{address}:{settings(site).port}" if address else None


def client_endpoint(site: Site) -> str:
    """What applications (the K3s ConfigMap) use: a DNS name for the load balancer's VIP."""
    chosen = settings(site)
    return f"http://{chosen.endpoint_name}.{site.config.domain}:{chosen.port}"


def stats_port(site: Site) -> int:
    return haproxy_stats_port(site.config.haproxy.stats_port, HAPROXY_SLOT)


def master_address(server: Server) -> str:
    return f"{server.private_ip}:{MASTER_PORT}"


def hostname_of(site: Site, address: str) -> str:
    """A storage server's name from `ip` or `ip:port` (SeaweedFS names nodes by address)."""
    return site.hostname_at(address.split(":", 1)[0]) or address
