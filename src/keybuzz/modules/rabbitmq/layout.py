"""Names, ports and paths of the RabbitMQ module: one place, shared by render, deploy, checks and drills."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.haproxy import stats_port as haproxy_stats_port
from keybuzz.render import ImageUser
from keybuzz.site import Site
from keybuzz.site.servers import Server

MODULE = "rabbitmq"
SERVER_CONTAINER = "rabbitmq"
HAPROXY_CONTAINER = "haproxy-rabbitmq"
HAPROXY_SLOT = 2  # this module's HAProxy stats port: the site's haproxy.stats_port + 2

AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
PROMETHEUS_PORT = 15692
EPMD_PORT = 4369
DIST_PORT = 25672  # Erlang distribution between the nodes (AMQP port + 20000)
CLI_PORTS = (35672, 35682)  # the CLI tools' distribution ports, inside each node's own container
IMAGE_USER = "rabbitmq"

# Paths inside the container (the same in the official image and in Debian's package).
C_CONF_DIR = "/etc/rabbitmq"
C_DATA_DIR = "/var/lib/rabbitmq"  # the rabbitmq user's HOME: its .erlang.cookie lives here
C_SCRIPT = f"{C_CONF_DIR}/keybuzz-rabbitmq.sh"
C_DEFINITIONS = f"{C_CONF_DIR}/definitions.json"


@dataclass(frozen=True)
class HostPaths:
    """Where the module's files live on a server (seed: /opt/keybuzz/rabbitmq/{data,config})."""

    conf: str
    secrets: str
    haproxy: str
    data: str

    @property
    def rabbitmq_conf(self) -> str:
        return f"{self.conf}/rabbitmq.conf"

    @property
    def env_conf(self) -> str:
        return f"{self.conf}/rabbitmq-env.conf"

    @property
    def advanced_config(self) -> str:
        return f"{self.conf}/advanced.config"

    @property
    def plugins(self) -> str:
        return f"{self.conf}/enabled_plugins"

    @property
    def script(self) -> str:
        return f"{self.conf}/keybuzz-rabbitmq.sh"

    @property
    def definitions(self) -> str:
        return f"{self.conf}/definitions.json"

    @property
    def cookie(self) -> str:
        return f"{self.data}/.erlang.cookie"

    @property
    def haproxy_cfg(self) -> str:
        return f"{self.haproxy}/haproxy.cfg"

    @property
    def haproxy_env(self) -> str:
        return f"{self.secrets}/haproxy.env"


def host_paths(site: Site) -> HostPaths:
    data, config = site.data_dir(MODULE), site.config_dir(MODULE)
    return HostPaths(conf=f"{config}/config", secrets=f"{config}/secrets", haproxy=f"{config}/haproxy",
                     data=f"{data}/data")


def nodes(site: Site) -> list[Server]:
    return site.with_role("queue")


def node_name(server: Server) -> str:
    """rabbit@<short hostname>: the name the other nodes and the CLI tools reach it by."""
    return f"rabbit@{server.hostname}"


def hostname_of(site: Site, node: str) -> str:
    return node.split("@", 1)[-1]


def image_user(site: Site) -> ImageUser:
    return ImageUser(site.image(MODULE), IMAGE_USER)


def stats_port(site: Site) -> int:
    return haproxy_stats_port(site.config.haproxy.stats_port, HAPROXY_SLOT)


def vip(site: Site) -> str | None:
    return site.config.vip_for(AMQP_PORT)
