"""The alert rules file per module, from the modules' AlertRule declarations and the monitoring
module's own host rules, with `for:` from keybuzz.yaml `monitoring`. Pure."""

from __future__ import annotations

from typing import Any

import yaml

from keybuzz.contract import AlertRule, Module
from keybuzz.modules.monitoring.scrape import NODE_JOB
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.site import Site

REAL_FILESYSTEMS = "xfs|ext4|btrfs"


def monitoring_rules(monitors: int) -> list[AlertRule]:
    """The monitoring's own failures: an alert that cannot be evaluated or delivered pages nobody."""
    rules = [
        AlertRule("PrometheusRuleFailures", "increase(prometheus_rule_evaluation_failures_total[5m]) > 0",
                  "{{ $labels.hostname }}: Prometheus fails to evaluate alert rules",
                  "the rule's last error: `keybuzz validate monitoring`", severity="warning"),
        AlertRule("PrometheusCannotNotify", "rate(prometheus_notifications_errors_total[5m]) > 0",
                  "{{ $labels.hostname }}: Prometheus cannot hand alerts to an Alertmanager",
                  "the Alertmanagers' containers and port 9093 from the monitor servers", severity="warning"),
    ]
    if monitors > 1:
        rules.append(AlertRule("AlertmanagerClusterDegraded",
                               f'alertmanager_cluster_members{{job="alertmanager"}} < {monitors}',
                               f"{{{{ $labels.hostname }}}}: Alertmanager sees {{{{ $value }}}} of {monitors} members",
                               "the other Alertmanager or cluster port 9094 between the monitor servers",
                               severity="warning"))
    return rules


def host_rules(settings: MonitoringSettings) -> list[AlertRule]:
    used = (f'100 * (1 - node_filesystem_avail_bytes{{fstype=~"{REAL_FILESYSTEMS}"}} '
            f'/ node_filesystem_size_bytes{{fstype=~"{REAL_FILESYSTEMS}"}})')
    return [
        AlertRule("HostDown", f'up{{job="{NODE_JOB}"}} == 0',
                  "{{ $labels.hostname }} does not answer (node exporter unreachable)",
                  "power, network or the firewall: `keybuzz lab status` in the lab, the cloud console in production"),
        AlertRule("TargetDown", f'up{{job!="{NODE_JOB}"}} == 0',
                  "{{ $labels.hostname }}: {{ $labels.job }} metrics unreachable",
                  "the service or its exporter stopped: `keybuzz validate` names which", severity="warning"),
        AlertRule("DiskAlmostFull", f"{used} > {settings.disk_used_percent}",
                  "{{ $labels.hostname }}: {{ $labels.mountpoint }} is {{ $value | printf \"%.0f\" }} % full",
                  "free space or grow the volume before the service stops writing", wait="slow", severity="warning"),
    ]


def for_duration(rule: AlertRule, settings: MonitoringSettings) -> str:
    return f"{settings.down_for_s if rule.wait == 'down' else settings.lag_for_s}s"


def group(name: str, module: str, rules: list[AlertRule], settings: MonitoringSettings) -> dict[str, Any]:
    return {"name": f"keybuzz-{name}", "rules": [{
        "alert": rule.name,
        "expr": rule.expr,
        "for": for_duration(rule, settings),
        "labels": {"severity": rule.severity, "module": module},
        "annotations": {"summary": rule.summary, "action": rule.action},
    } for rule in rules]}


def rule_groups(site: Site, modules: list[Module]) -> dict[str, dict[str, Any]]:
    """File name (without .yml) -> one rules file with one group per module that declares rules."""
    settings = site.settings(MonitoringSettings)
    files = {}
    for module in modules:
        rules = module.alerts(site)
        if rules:
            files[module.name] = {"groups": [group(module.name, module.name, rules, settings)]}
    return files


def rule_names(site: Site, modules: list[Module]) -> list[str]:
    return [r["alert"] for f in rule_groups(site, modules).values() for g in f["groups"] for r in g["rules"]]


def dump(document: dict[str, Any]) -> str:
    return "# Rendered by keybuzz: edits are overwritten on the next install.\n" + yaml.safe_dump(
        document, sort_keys=False, width=200)
