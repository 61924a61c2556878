"""keybuzz.yaml, the core part: network, load balancers, container CLI, paths, SSH, HAProxy.

Each module adds its own sections (keybuzz.site.schema): the model a site is validated against
is this one plus the sections the registry declares."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keybuzz.site.roles import Role
from keybuzz.values import DEVICE_PATH, DNS_NAME, LOCAL_PATH, MOUNT_OPTION, NAME, PLATFORM_ROOT, POSIX_USER, REGISTRY


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Network(Strict):
    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")


class LoadBalancer(Strict):
    """A managed load balancer (Hetzner in production, a TCP HAProxy host in the lab)."""

    name: NAME.type
    vip: ipaddress.IPv4Address
    target_role: Literal["haproxy", "proxysql"]
    ports: list[int] = Field(min_length=1)

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1-65535")
        if len(set(ports)) != len(ports):
            raise ValueError("a port is listed twice")
        return ports


def _default_load_balancers() -> list[LoadBalancer]:
    return [
        LoadBalancer(name="lb-internal", vip=ipaddress.IPv4Address("10.0.0.10"), target_role="haproxy",
                     ports=[5432, 5433, 6432, 6379, 5672, 9000]),
        LoadBalancer(name="lb-mariadb", vip=ipaddress.IPv4Address("10.0.0.20"), target_role="proxysql",
                     ports=[3306]),
    ]


class Paths(Strict):
    """Every module's folders are `<root>/<module>`: these reach mkdir, chown, fstab and rm -rf as root."""

    data_root: PLATFORM_ROOT.type = "/opt/keybuzz"
    config_root: PLATFORM_ROOT.type = "/opt/keybuzz"


class Ssh(Strict):
    """`known_hosts: null` turns host-key checking off: refused unless `insecure_accept_any_host_key: true`
    says so too (then anyone on the path to a server can pose as it and receive every secret)."""

    user: POSIX_USER.type = "root"
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: LOCAL_PATH.type = "~/.ssh/id_ed25519"
    known_hosts: LOCAL_PATH.type | None = "~/.ssh/known_hosts"
    insecure_accept_any_host_key: bool = False
    connect_timeout_s: float = Field(default=10.0, gt=0)
    command_timeout_s: float = Field(default=300.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    parallelism: int = Field(default=20, ge=1, le=256)

    @model_validator(mode="after")
    def _host_keys_checked(self) -> Ssh:
        if self.known_hosts is None and not self.insecure_accept_any_host_key:
            raise ValueError("known_hosts is null: host keys would not be checked. Give an OpenSSH known_hosts "
                             "file (ssh-keyscan the servers into it), or, on a network you trust, also set "
                             "ssh.insecure_accept_any_host_key: true")
        return self


class HaproxySettings(Strict):
    """The HAProxy containers of several modules share the haproxy servers: each takes its own stats
    port, `stats_port` + the module's slot (keybuzz.haproxy.stats_port)."""

    stats_port: int = Field(default=8404, ge=1, le=65000)


# Device paths that name a volume for good. /dev/sdX, /dev/vdX, /dev/nvmeXnY are handed out in probe
# order and can name another disk after a reboot or an attach: formatting one erases the wrong disk.
STABLE_DEVICE_PREFIXES = ("/dev/disk/by-id/", "/dev/disk/by-path/")


class VolumeAttach(Strict):
    """A block device (a Hetzner volume) that holds a module's data path on a server, or on every
    server of a role: `use` names the path as `module.name` (docs/volumes.md lists them; a wrong
    one is answered with the known ones)."""

    server: NAME.type | None = None
    role: Role | None = None
    use: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$")
    device: DEVICE_PATH.type
    filesystem: Literal["xfs"] = "xfs"
    options: list[MOUNT_OPTION.type] = Field(default_factory=lambda: ["noatime"])
    min_free_percent: int = Field(default=10, ge=0, le=90)

    @field_validator("device")
    @classmethod
    def _stable_device(cls, device: str) -> str:
        if not device.startswith(STABLE_DEVICE_PREFIXES) or DEVICE_PATH.problem(device):
            raise ValueError(f"{device!r} is not a stable device path: name the volume by /dev/disk/by-id/... "
                             "(Hetzner: /dev/disk/by-id/scsi-0HC_Volume_ID) or /dev/disk/by-path/...; "
                             "/dev/sdX can name another disk after a reboot")
        return device

    @field_validator("options")
    @classmethod
    def _plain_options(cls, options: list[str]) -> list[str]:
        for option in options:
            if option.startswith("x-keybuzz"):
                raise ValueError(f"mount option {option!r}: x-keybuzz marks keybuzz's own fstab lines")
        return options

    @model_validator(mode="after")
    def _one_target(self) -> VolumeAttach:
        if (self.server is None) == (self.role is None):
            raise ValueError("give exactly one of server (a hostname) or role (every server of that role)")
        return self


class CoreConfig(Strict):
    network: Network = Network()
    domain: DNS_NAME.type = "keybuzz.io"
    dns_servers: list[ipaddress.IPv4Address] = [ipaddress.IPv4Address("1.1.1.1"),
                                                 ipaddress.IPv4Address("8.8.8.8")]
    container_cli: Literal["docker", "podman"] = "docker"
    registry: REGISTRY.type | None = None
    load_balancers: list[LoadBalancer] = Field(default_factory=_default_load_balancers)
    paths: Paths = Paths()
    ssh: Ssh = Ssh()
    haproxy: HaproxySettings = HaproxySettings()
    volumes: list[VolumeAttach] = Field(default_factory=list)

    @field_validator("load_balancers")
    @classmethod
    def _unique_vips(cls, load_balancers: list[LoadBalancer]) -> list[LoadBalancer]:
        vips = [lb.vip for lb in load_balancers]
        if len(set(vips)) != len(vips):
            raise ValueError("two load balancers share a VIP")
        return load_balancers

    def load_balancer_for(self, port: int) -> LoadBalancer | None:
        return next((lb for lb in self.load_balancers if port in lb.ports), None)

    def vip_for(self, port: int) -> str | None:
        """The VIP of the load balancer that serves `port` (a module's way in), or None."""
        lb = self.load_balancer_for(port)
        return str(lb.vip) if lb else None
