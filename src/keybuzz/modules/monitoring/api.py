"""Prometheus' and Alertmanager's HTTP APIs, read from the control machine with the site's web login
(basic auth built in memory: never in an argv, a log line or an error; the base OS firewall also
opens them to the monitor and install servers only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from keybuzz import jsonhttp
from keybuzz.modules.monitoring import layout
from keybuzz.poll import NotYet
from keybuzz.site import Site
from keybuzz.site.servers import Server

TIMEOUT_S = 3.0
REFUSED = (f"the login of credentials/{layout.CREDENTIALS}.env ({layout.WEB_USER}, {layout.WEB_PASSWORD}) is not "
           f"the one the server has: run `keybuzz install --only {layout.MODULE}`")


@dataclass(frozen=True)
class WebApi:
    """One Prometheus or Alertmanager: its URL, and the Authorization header of the site's login."""

    url: str
    auth: str = field(repr=False)

    def __str__(self) -> str:
        return self.url


def _web(site: Site, url: str) -> WebApi:
    return WebApi(url, jsonhttp.basic_auth(*layout.web_login(site)))


def prometheus(site: Site, server: Server) -> WebApi:
    return _web(site, layout.prometheus_url(server))


def alertmanager(site: Site, server: Server) -> WebApi:
    return _web(site, layout.alertmanager_url(server))


def prometheus_servers(site: Site) -> list[WebApi]:
    """Every Prometheus of the site, in servers.tsv order."""
    return [prometheus(site, s) for s in layout.monitors(site)]


async def _request(web: WebApi, path: str) -> tuple[int, Any]:
    """(status, body) of a GET with the login; a refused login raises NotYet with its fix."""
    url = f"{web.url}{path}"
    status, body = await jsonhttp.request(url, auth=web.auth, timeout=TIMEOUT_S)
    if status == 401:
        raise NotYet(f"{url} answered HTTP 401: {REFUSED}")
    return status, body


async def _get(web: WebApi, path: str) -> Any:
    status, body = await _request(web, path)
    if status != 200:
        url = f"{web.url}{path}"
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


async def ready(web: WebApi) -> bool:
    status, _ = await _request(web, "/-/ready")
    return status == 200


async def targets(web: WebApi) -> list[TargetState]:
    return parse_targets(await _get(web, "/api/v1/targets?state=active"))


async def rules(web: WebApi) -> list[RuleState]:
    return parse_rules(await _get(web, "/api/v1/rules?type=alert"))


async def alerts(web: WebApi) -> list[Alert]:
    return parse_alerts(await _get(web, "/api/v1/alerts"))


async def active_alertmanagers(web: WebApi) -> list[str]:
    data = await _get(web, "/api/v1/alertmanagers")
    return [a["url"] for a in data.get("activeAlertmanagers", [])]


async def query(web: WebApi, expr: str) -> list[dict[str, Any]]:
    data = await _get(web, f"/api/v1/query?query={quote(expr)}")
    return list(data.get("result", []))


async def alertmanager_peers(web: WebApi) -> tuple[str, int]:
    """Alertmanager's cluster status ("ready", "settling", "disabled") and how many peers it sees."""
    data = await _get(web, "/api/v2/status")
    cluster = data.get("cluster", {})
    return cluster.get("status", ""), len(cluster.get("peers") or [])
