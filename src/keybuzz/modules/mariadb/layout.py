"""Names, ports and paths of the MariaDB Galera module: one place, shared by render, deploy, checks and drills."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.render import ImageUser
from keybuzz.site import Site
from keybuzz.site.servers import Server

MODULE = "mariadb"
SERVER_CONTAINER = "mariadb"
HEALTH_CONTAINER = "galera-health"
IMAGE_USER = "mysql"

MYSQL_PORT = 3306
GALERA_PORT = 4567  # group communication (gcomm)
IST_PORT = 4568  # incremental state transfer
SST_PORT = 4444  # full state transfer (mariabackup over socat)
HEALTH_PORT = 9200  # the health agent: 200 only on a Synced member of the primary component

# Paths inside the containers.
C_CONF_DIR = "/etc/keybuzz-mariadb"
C_DATA_DIR = "/var/lib/mysql"
C_SOCKET = f"{C_DATA_DIR}/mysqld.sock"  # the data folder: the mysql user owns it in every image
C_SCRIPT = f"{C_CONF_DIR}/keybuzz-galera.sh"
C_MY_CNF = f"{C_CONF_DIR}/my.cnf"
C_AGENT = f"{C_CONF_DIR}/galera_health.py"


@dataclass(frozen=True)
class HostPaths:
    """Where the module's files live on a server (seed: /opt/keybuzz/mariadb/{data,config})."""

    conf: str
    secrets: str
    data: str

    @property
    def my_cnf(self) -> str:
        return f"{self.conf}/my.cnf"

    @property
    def secrets_cnf(self) -> str:
        """wsrep_sst_auth: included by my.cnf, 0600, owned by the mysql user."""
        return f"{self.conf}/secrets.cnf"

    @property
    def script(self) -> str:
        return f"{self.conf}/keybuzz-galera.sh"

    @property
    def agent(self) -> str:
        return f"{self.conf}/galera_health.py"

    @property
    def health_env(self) -> str:
        return f"{self.secrets}/health.env"

    @property
    def grastate(self) -> str:
        return f"{self.data}/grastate.dat"

    @property
    def gvwstate(self) -> str:
        return f"{self.data}/gvwstate.dat"


def host_paths(site: Site) -> HostPaths:
    data, config = site.data_dir(MODULE), site.config_dir(MODULE)
    return HostPaths(conf=f"{config}/config", secrets=f"{config}/secrets", data=f"{data}/data")


def nodes(site: Site) -> list[Server]:
    return site.with_role("maria")


def image_user(site: Site) -> ImageUser:
    return ImageUser(site.image(MODULE), IMAGE_USER)
