"""render(site, modules): Prometheus and Alertmanager on the monitor servers, the node exporter on
every server, and the exporters the modules declare on their servers. Pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.contract import MetricsEndpoint, Module
from keybuzz.modules.monitoring import dashboards, layout, rules, scrape, webauth
from keybuzz.modules.monitoring.settings import MonitoringSettings, NotifySettings
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans, merge_plans
from keybuzz.site import Site
from keybuzz.site.servers import Server

HEADER = "# Rendered by keybuzz: edits are overwritten on the next install.\n"


def alertmanager_config(notify: NotifySettings, webhook_url: str | None) -> dict[str, Any]:
    """One route to the on-call receiver, posting to `webhook_url` when there is one. A host that is
    down inhibits the other alerts it causes (its exporters' TargetDown, its members missing), so the
    page names the cause once."""
    receiver: dict[str, Any] = {"name": "on-call"}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": notify.send_resolved}]
    return {
        "route": {"receiver": "on-call", "group_by": ["alertname", "hostname"],
                  "group_wait": f"{notify.group_wait_s}s", "group_interval": f"{notify.group_interval_s}s",
                  "repeat_interval": notify.repeat_interval},
        "receivers": [receiver],
        "inhibit_rules": [{"source_matchers": ['alertname="HostDown"'],
                           "target_matchers": ['alertname!="HostDown"'], "equal": ["hostname"]}],
    }


def _alertmanager_file(site: Site, path: str) -> FileSpec:
    """With a webhook the file holds its URL: then secret, 0600, owned by the Alertmanager's user."""
    notify = site.settings(MonitoringSettings).notify
    url = layout.webhook_url(site) if notify.receiver == "webhook" else None
    text = HEADER + yaml.safe_dump(alertmanager_config(notify, url), sort_keys=False)
    return FileSpec(path, text, secret=True, owner=layout.SERVICE_USER) if url else FileSpec(path, text)


def _web_files(site: Site, paths: layout.HostPaths) -> list[FileSpec]:
    """The web login of both services: the bcrypt hash each checks (a derived secret), and the
    password Prometheus sends to itself and to the Alertmanagers. Secret, owned by their user."""
    user, password = layout.web_login(site)
    key = site.secret(layout.CREDENTIALS, layout.WEB_SALT_KEY)
    config = HEADER + yaml.safe_dump(webauth.web_config(user, password, key))
    return [FileSpec(path, text, secret=True, owner=layout.SERVICE_USER)
            for path, text in ((paths.prometheus_web_yml, config), (paths.prometheus_web_password, password),
                               (paths.alertmanager_web_yml, config))]


@dataclass(frozen=True)
class MonitorFiles:
    """What every monitor server gets the same of: rendered once per render, not once per server
    (the rules and the dashboards are most of the render's time)."""

    rule_paths: tuple[str, ...]
    files: tuple[FileSpec, ...]


def _monitor_files(site: Site, modules: list[Module]) -> MonitorFiles:
    paths = layout.host_paths(site)
    rule_files = {f"{paths.rules_dir}/{name}.yml": rules.dump(doc)
                  for name, doc in rules.rule_groups(site, modules).items()}
    boards = {f"{paths.dashboards}/{name}.json": json.dumps(board, indent=2, sort_keys=True) + "\n"
              for name, board in dashboards.dashboards(site, modules).items()}
    k3s = HEADER + yaml.safe_dump(scrape.k3s_additional_scrape_configs(site, modules), sort_keys=False, width=200)
    return MonitorFiles(tuple(rule_files), (*(FileSpec(path, text) for path, text in rule_files.items()),
                                            _alertmanager_file(site, paths.alertmanager_yml),
                                            *_web_files(site, paths),
                                            *(FileSpec(path, text) for path, text in boards.items()),
                                            FileSpec(paths.k3s_scrape_configs, k3s)))


def _monitor_host(site: Site, server: Server, modules: list[Module], shared: MonitorFiles) -> HostPlan:
    paths = layout.host_paths(site)
    ip = server.private_ip
    settings = site.settings(MonitoringSettings)
    prometheus_yml = HEADER + yaml.safe_dump(scrape.prometheus_config(site, modules, server.hostname),
                                             sort_keys=False, width=200)
    prometheus = ContainerSpec(
        name=layout.PROMETHEUS_CONTAINER, image=site.image("prometheus"), module=layout.MODULE,
        user=layout.SERVICE_USER, entrypoint="/bin/prometheus",
        command=(f"--config.file={layout.C_PROMETHEUS_CONF}/prometheus.yml",
                 f"--storage.tsdb.path={layout.C_PROMETHEUS_DATA}",
                 f"--storage.tsdb.retention.time={settings.retention}",
                 f"--web.listen-address={ip}:{layout.PROMETHEUS_PORT}",
                 f"--web.config.file={layout.C_PROMETHEUS_CONF}/web.yml"),
        mounts=(Mount(f"{paths.conf}/prometheus", layout.C_PROMETHEUS_CONF, read_only=True),
                Mount(paths.prometheus_data, layout.C_PROMETHEUS_DATA)),
        restart_on=(paths.prometheus_yml, *shared.rule_paths, paths.prometheus_web_yml,
                    paths.prometheus_web_password),
    )
    peers = [s for s in layout.monitors(site) if s.hostname != server.hostname]
    cluster = ((f"--cluster.listen-address={ip}:{layout.ALERTMANAGER_CLUSTER_PORT}",
                f"--cluster.advertise-address={ip}:{layout.ALERTMANAGER_CLUSTER_PORT}",
                *(f"--cluster.peer={s.private_ip}:{layout.ALERTMANAGER_CLUSTER_PORT}" for s in peers))
               if peers else ("--cluster.listen-address=",))
    alertmanager = ContainerSpec(
        name=layout.ALERTMANAGER_CONTAINER, image=site.image("alertmanager"), module=layout.MODULE,
        user=layout.SERVICE_USER, entrypoint="/bin/alertmanager",
        command=(f"--config.file={layout.C_ALERTMANAGER_CONF}/alertmanager.yml",
                 f"--storage.path={layout.C_ALERTMANAGER_DATA}",
                 f"--web.listen-address={ip}:{layout.ALERTMANAGER_PORT}",
                 f"--web.config.file={layout.C_ALERTMANAGER_CONF}/web.yml", *cluster),
        mounts=(Mount(f"{paths.conf}/alertmanager", layout.C_ALERTMANAGER_CONF, read_only=True),
                Mount(paths.alertmanager_data, layout.C_ALERTMANAGER_DATA)),
        restart_on=(paths.alertmanager_yml, paths.alertmanager_web_yml),
    )
    return HostPlan(
        hostname=server.hostname,
        directories=[DirSpec(paths.conf), DirSpec(f"{paths.conf}/prometheus"), DirSpec(paths.rules_dir),
                     DirSpec(f"{paths.conf}/alertmanager"), DirSpec(f"{paths.conf}/grafana"),
                     DirSpec(paths.dashboards), DirSpec(f"{paths.conf}/k3s"),
                     DirSpec(paths.prometheus_data, 0o755, layout.SERVICE_USER, data=True),
                     DirSpec(paths.alertmanager_data, 0o755, layout.SERVICE_USER, data=True)],
        files=[FileSpec(paths.prometheus_yml, prometheus_yml), *shared.files],
        containers=[prometheus, alertmanager],
    )


def _node_exporter_host(site: Site, server: Server) -> HostPlan:
    """The host's root, read-only: filesystems (the data volumes' fill) as the host sees them."""
    spec = ContainerSpec(
        name=layout.NODE_EXPORTER_CONTAINER, image=site.image("node-exporter"), module=layout.MODULE,
        entrypoint="/bin/node_exporter",
        command=(f"--path.rootfs={layout.C_HOST_ROOT}",
                 f"--web.listen-address={server.private_ip}:{layout.NODE_EXPORTER_PORT}"),
        mounts=(Mount("/", layout.C_HOST_ROOT, read_only=True),),
    )
    return HostPlan(hostname=server.hostname, containers=[spec])


def _exporter_host(site: Site, server: Server, endpoint: MetricsEndpoint) -> HostPlan:
    exporter = endpoint.exporter
    assert exporter is not None
    paths = layout.host_paths(site)
    env_path = paths.exporter_env(endpoint.job)
    files = [FileSpec(env_path, exporter.env(site, server), secret=True)] if exporter.env else []
    spec = ContainerSpec(
        name=f"{endpoint.job}-exporter", image=site.image(exporter.image), module=layout.MODULE,
        user=layout.SERVICE_USER, entrypoint=exporter.entrypoint,
        command=tuple(arg.replace("{ip}", str(server.private_ip)) for arg in exporter.args),
        env_file=env_path if exporter.env else None,
    )
    return HostPlan(hostname=server.hostname, directories=[DirSpec(paths.conf), DirSpec(paths.secrets, 0o700)],
                    files=files, containers=[spec])


def render(site: Site, modules: list[Module]) -> Plans:
    if not layout.monitors(site):
        return {}
    shared = _monitor_files(site, modules)
    plan_sets: list[Plans] = [{s.hostname: _monitor_host(site, s, modules, shared) for s in layout.monitors(site)},
                              {s.hostname: _node_exporter_host(site, s) for s in site.servers}]
    for endpoint in scrape.endpoints(site, modules):
        if endpoint.exporter:
            plan_sets.append({s.hostname: _exporter_host(site, s, endpoint) for s in site.with_role(endpoint.role)})
    return merge_plans(*plan_sets)
