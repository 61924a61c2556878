"""Names, ports and paths of the monitoring module: one place, shared by render, deploy, checks and drills."""

from __future__ import annotations

from dataclasses import dataclass

from keybuzz.site import Site
from keybuzz.site.servers import Server

MODULE = "monitoring"
ROLE = "monitor"
PROMETHEUS_CONTAINER = "prometheus"
ALERTMANAGER_CONTAINER = "alertmanager"
NODE_EXPORTER_CONTAINER = "node-exporter"

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094  # gossip between the Alertmanagers (tcp and udp)
NODE_EXPORTER_PORT = 9100
# The operator's paging URL (credentials/alerting.env): a secret, only in the 0600 alertmanager.yml.
WEBHOOK_CREDENTIALS = ("alerting", "ALERTING_WEBHOOK_URL_SECRET")
# credentials/monitoring.env: the basic-auth login of Prometheus' and Alertmanager's web APIs, and the
# key their bcrypt salt is derived from (it never leaves the control machine).
CREDENTIALS = "monitoring"
WEB_USER = "MONITORING_WEB_USER"
WEB_PASSWORD = "MONITORING_WEB_PASSWORD"
WEB_SALT_KEY = "MONITORING_WEB_SALT_KEY"
# Prometheus and Alertmanager run as nobody in their official images; the lab image runs them the same.
SERVICE_USER = "65534:65534"

# Paths inside the containers (the official images' and, through symlinks, the lab image's).
C_PROMETHEUS_CONF = "/etc/prometheus"
C_PROMETHEUS_DATA = "/prometheus"
C_ALERTMANAGER_CONF = "/etc/alertmanager"
C_ALERTMANAGER_DATA = "/alertmanager"
C_HOST_ROOT = "/host"
C_PROMETHEUS_WEB_PASSWORD = f"{C_PROMETHEUS_CONF}/web-password"


@dataclass(frozen=True)
class HostPaths:
    """Where the module's files live on a server."""

    conf: str  # prometheus.yml, rules/, alertmanager.yml, dashboards/
    secrets: str  # the exporters' 0600 env files
    prometheus_data: str
    alertmanager_data: str

    @property
    def prometheus_yml(self) -> str:
        return f"{self.conf}/prometheus/prometheus.yml"

    @property
    def rules_dir(self) -> str:
        return f"{self.conf}/prometheus/rules"

    @property
    def prometheus_web_yml(self) -> str:
        return f"{self.conf}/prometheus/web.yml"

    @property
    def prometheus_web_password(self) -> str:
        """The login's password, for Prometheus' own scrapes of itself and of the Alertmanagers."""
        return f"{self.conf}/prometheus/web-password"

    @property
    def alertmanager_yml(self) -> str:
        return f"{self.conf}/alertmanager/alertmanager.yml"

    @property
    def alertmanager_web_yml(self) -> str:
        return f"{self.conf}/alertmanager/web.yml"

    @property
    def dashboards(self) -> str:
        return f"{self.conf}/grafana/dashboards"

    @property
    def k3s_scrape_configs(self) -> str:
        return f"{self.conf}/k3s/additional-scrape-configs.yaml"

    def exporter_env(self, job: str) -> str:
        return f"{self.secrets}/{job}-exporter.env"


def host_paths(site: Site) -> HostPaths:
    data, config = site.data_dir(MODULE), site.config_dir(MODULE)
    return HostPaths(conf=f"{config}/config", secrets=f"{config}/secrets",
                     prometheus_data=f"{data}/prometheus", alertmanager_data=f"{data}/alertmanager")


def monitors(site: Site) -> list[Server]:
    return site.with_role(ROLE)


def prometheus_url(server: Server) -> str:
    return f"http://{server.private_ip}:{PROMETHEUS_PORT}"


def alertmanager_url(server: Server) -> str:
    return f"http://{server.private_ip}:{ALERTMANAGER_PORT}"


def web_login(site: Site) -> tuple[str, str]:
    """(user, password) of the web APIs, from credentials/monitoring.env."""
    return site.secret(CREDENTIALS, WEB_USER), site.secret(CREDENTIALS, WEB_PASSWORD)


def webhook_url(site: Site) -> str | None:
    """The operator's webhook URL, or None when none is written (lint says so when one is wanted)."""
    service, key = WEBHOOK_CREDENTIALS
    return site.credentials.get(service, {}).get(key) or None
