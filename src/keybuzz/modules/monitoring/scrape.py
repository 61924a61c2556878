"""The scrape configuration, generated from the site and the modules' metrics declarations (never a
hand-kept target list): prometheus.yml for the monitor servers and the additional scrape
configuration kube-prometheus-stack needs to scrape the same targets from inside K3s. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keybuzz.contract import MetricsEndpoint, Module
from keybuzz.modules.monitoring import layout, webauth
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.site import Site

NODE_JOB = "node"
PROMETHEUS_JOB = "prometheus"
ALERTMANAGER_JOB = "alertmanager"
OWN_JOBS = (PROMETHEUS_JOB, ALERTMANAGER_JOB)  # behind the web login
REPLICA_LABEL = "prometheus_replica"  # which monitor server raised an alert; dropped before Alertmanager
MAX_SCRAPE_TIMEOUT_S = 10


@dataclass(frozen=True)
class Target:
    job: str
    hostname: str
    address: str  # ip:port
    path: str = "/metrics"


def own_endpoints() -> list[MetricsEndpoint]:
    """Prometheus and Alertmanager themselves, and the node exporter on every server (role "")."""
    return [MetricsEndpoint(PROMETHEUS_JOB, layout.ROLE, layout.PROMETHEUS_PORT),
            MetricsEndpoint(ALERTMANAGER_JOB, layout.ROLE, layout.ALERTMANAGER_PORT),
            MetricsEndpoint(NODE_JOB, "", layout.NODE_EXPORTER_PORT)]


def endpoints(site: Site, modules: list[Module]) -> list[MetricsEndpoint]:
    """Every endpoint of the site, the modules' in registry order (the monitoring module's included)."""
    return [e for m in modules for e in m.metrics(site)]


def targets(site: Site, modules: list[Module]) -> list[Target]:
    found = []
    for endpoint in endpoints(site, modules):
        servers = site.servers if endpoint.role == "" else site.with_role(endpoint.role)
        found += [Target(endpoint.job, s.hostname, f"{s.private_ip}:{endpoint.port}", endpoint.path) for s in servers]
    return found


def _login(site: Site) -> dict[str, Any]:
    """How Prometheus logs in to itself and to the Alertmanagers: the password from its 0600 file."""
    return webauth.client_auth(layout.web_login(site)[0], layout.C_PROMETHEUS_WEB_PASSWORD)


def scrape_configs(site: Site, modules: list[Module]) -> list[dict[str, Any]]:
    """One job per endpoint; each target labelled with its server's hostname (what alerts name).
    Prometheus and Alertmanager are scraped with the web login."""
    jobs: dict[str, dict[str, Any]] = {}
    for target in targets(site, modules):
        if target.job not in jobs:
            jobs[target.job] = {"job_name": target.job, "metrics_path": target.path,
                                **(_login(site) if target.job in OWN_JOBS else {}), "static_configs": []}
        job = jobs[target.job]
        job["static_configs"].append({"targets": [target.address], "labels": {"hostname": target.hostname}})
    return list(jobs.values())


def prometheus_config(site: Site, modules: list[Module], hostname: str) -> dict[str, Any]:
    settings = site.settings(MonitoringSettings)
    return {
        "global": {
            "scrape_interval": f"{settings.scrape_interval_s}s",
            "scrape_timeout": f"{min(settings.scrape_interval_s, MAX_SCRAPE_TIMEOUT_S)}s",
            "evaluation_interval": f"{settings.evaluation_interval_s}s",
            "external_labels": {REPLICA_LABEL: hostname},
        },
        "rule_files": [f"{layout.C_PROMETHEUS_CONF}/rules/*.yml"],
        "alerting": {
            # Both Prometheus servers evaluate the same rules: without their replica label the two
            # copies of an alert are one alert to the Alertmanagers.
            "alert_relabel_configs": [{"action": "labeldrop", "regex": REPLICA_LABEL}],
            "alertmanagers": [{**_login(site), "static_configs": [{"targets": [
                f"{s.private_ip}:{layout.ALERTMANAGER_PORT}" for s in layout.monitors(site)]}]}],
        },
        "scrape_configs": scrape_configs(site, modules),
    }


def k3s_additional_scrape_configs(site: Site, modules: list[Module]) -> list[dict[str, Any]]:
    """For kube-prometheus-stack (`prometheus.prometheusSpec.additionalScrapeConfigs`): the same
    targets, outside the cluster, with job names prefixed so they never clash with in-cluster jobs.
    The base OS firewall opens the metrics ports to the monitor servers only: an in-cluster Prometheus
    scrapes them once its nodes are given the monitor role too."""
    return [{**job, "job_name": f"keybuzz-{job['job_name']}"} for job in scrape_configs(site, modules)
            if job["job_name"] not in OWN_JOBS]
