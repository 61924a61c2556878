"""Prometheus' and Alertmanager's HTTP APIs, read from the control machine (no auth: the base OS
firewall opens them to the monitor and install servers only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from keybuzz import jsonhttp
from keybuzz.poll import NotYet

TIMEOUT_S = 3.0


async def _get(url: str) -> Any:
    status, body = await jsonhttp.request(url, timeout=TIMEOUT_S)
    if status != 200:
        raise NotYet(f"{url} answered HTTP {status}: {str(body)[:200]}")
    if isinstance(body, dict) and "data" in body and body.get("status") == "success":
        return body["data"]
    return body


@dataclass(frozen=True)
class TargetState:
    job: str
    hostname: str
    url: str
    health: str  # up | down | unknown (not scraped yet)
    last_error: str = ""


@dataclass(frozen=True)
class RuleState:
    group: str
    name: str
    health: str  # ok | err | unknown (not evaluated yet)
    last_error: str = ""


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # pending | firing
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The alert's identity in a drill record: its name and where (hostname, job, proxy ...)."""
        where = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())
                         if k not in ("alertname", "severity", "module"))
        return f"{self.name}{{{where}}}"


def parse_targets(data: dict[str, Any]) -> list[TargetState]:
    return [TargetState(t["labels"].get("job", ""), t["labels"].get("hostname", ""), t.get("scrapeUrl", ""),
                        t.get("health", "unknown"), t.get("lastError", "")) for t in data.get("activeTargets", [])]


def parse_rules(data: dict[str, Any]) -> list[RuleState]:
    return [RuleState(g["name"], r["name"], r.get("health", "unknown"), r.get("lastError", ""))
            for g in data.get("groups", []) for r in g.get("rules", []) if r.get("type") == "alerting"]


def parse_alerts(data: dict[str, Any]) -> list[Alert]:
    return [Alert(a["labels"].get("alertname", ""), a.get("state", ""), dict(a["labels"]))
            for a in data.get("alerts", [])]


async def ready(base: str) -> bool:
    status, _ = await jsonhttp.request(f"{base}/-/ready", timeout=TIMEOUT_S)
    return status == 200


async def targets(base: str) -> list[TargetState]:
    return parse_targets(await _get(f"{base}/api/v1/targets?state=active"))


async def rules(base: str) -> list[RuleState]:
    return parse_rules(await _get(f"{base}/api/v1/rules?type=alert"))


async def alerts(base: str) -> list[Alert]:
    return parse_alerts(await _get(f"{base}/api/v1/alerts"))


async def active_alertmanagers(base: str) -> list[str]:
    data = await _get(f"{base}/api/v1/alertmanagers")
    return [a["url"] for a in data.get("activeAlertmanagers", [])]


async def query(base: str, expr: str) -> list[dict[str, Any]]:
    data = await _get(f"{base}/api/v1/query?query={quote(expr)}")
    return list(data.get("result", []))


async def alertmanager_peers(base: str) -> tuple[str, int]:
    """Alertmanager's cluster status ("ready", "settling", "disabled") and how many peers it sees."""
    data = await _get(f"{base}/api/v2/status")
    cluster = data.get("cluster", {})
    return cluster.get("status", ""), len(cluster.get("peers") or [])
