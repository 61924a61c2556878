"""`keybuzz validate monitoring`: every target of the site up in each Prometheus, every rule loaded
and healthy, no critical alert firing (warnings listed), each Alertmanager ready in its cluster and
used by each Prometheus, and its pages delivered."""

from __future__ import annotations

import asyncio

from keybuzz.contract import CheckResult, DeployContext, Module
from keybuzz.modules.monitoring import api, dashboards, layout, rules, scrape
from keybuzz.modules.monitoring.settings import MonitoringSettings, NotifySettings
from keybuzz.poll import describe

SHOWN = 5  # problems listed per check; the rest counted


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


async def _targets_twice(base: api.WebApi, scrape_interval_s: int) -> list[api.TargetState]:
    """The targets; when some are not up, read again after one more scrape: one slow scrape on a
    busy server is not a target down (the alerts wait their `for:` too)."""
    targets = await api.targets(base)
    if all(t.health == "up" for t in targets):
        return targets
    await asyncio.sleep(scrape_interval_s + 1)
    return await api.targets(base)


async def _prometheus(base: api.WebApi, where: str, expected_targets: int, expected_rules: int,
                      alertmanagers: int, scrape_interval_s: int) -> list[CheckResult]:
    results = []
    targets = await _targets_twice(base, scrape_interval_s)
    down = [f"{t.job} on {t.hostname}: {t.health} {t.last_error}".rstrip() for t in targets if t.health != "up"]
    results.append(CheckResult(f"every target up in Prometheus on {where}",
                               not down and len(targets) == expected_targets,
                               f"{len(targets) - len(down)} of {expected_targets} up"
                               + (f": {_listed(down)}" if down else "")))
    loaded = await api.rules(base)
    bad = [f"{r.name}: {r.health} {r.last_error}".rstrip() for r in loaded if r.health != "ok"]
    results.append(CheckResult(f"every alert rule loaded on {where}", not bad and len(loaded) == expected_rules,
                               f"{len(loaded)} of {expected_rules} loaded" + (f": {_listed(bad)}" if bad else "")))
    firing = [a for a in await api.alerts(base) if a.state == "firing"]
    critical = [a.key for a in firing if a.labels.get("severity") == "critical"]
    warnings = [a.key for a in firing if a.labels.get("severity") != "critical"]
    detail = "; ".join(part for part in (f"critical: {_listed(critical)}" if critical else "",
                                         f"warnings: {_listed(warnings)}" if warnings else "") if part)
    results.append(CheckResult(f"no critical alert firing on {where}", not critical, detail or "none"))
    active = await api.active_alertmanagers(base)
    results.append(CheckResult(f"Prometheus on {where} sends alerts to every Alertmanager",
                               len(active) == alertmanagers, f"{len(active)} of {alertmanagers} active"))
    return results


async def _alertmanager(base: api.WebApi, where: str, monitors: int) -> CheckResult:
    status, peers = await api.alertmanager_peers(base)
    clustered = monitors == 1 or (status == "ready" and peers == monitors)
    return CheckResult(f"Alertmanager on {where} ready", clustered,
                       f"cluster {status or 'unknown'}, {peers} of {monitors} peers")


async def _count(prometheus: api.WebApi, expr: str) -> int:
    rows = await api.query(prometheus, expr)
    return round(float(rows[0]["value"][1])) if rows else 0


async def _pages(prometheus: api.WebApi, where: str, notify: NotifySettings) -> CheckResult:
    """Alertmanager's own counters, as Prometheus scraped them: a page that could not be delivered
    (a wrong URL, the paging service down) is only ever seen there."""
    name = f"pages delivered by Alertmanager on {where}"
    if notify.receiver == "none":
        return CheckResult(name, False, "no receiver: alerts are sent nowhere (keybuzz.yaml "
                                        "monitoring.notify.receiver: none; lint KB026)", available=False)
    where_sent = f'integration="{notify.receiver}",hostname="{where}"'
    sent = await _count(prometheus, f"sum(increase(alertmanager_notifications_total{{{where_sent}}}[1h]))")
    failed = await _count(prometheus, f"sum(increase(alertmanager_notifications_failed_total{{{where_sent}}}[1h]))")
    return CheckResult(name, failed == 0, f"{notify.receiver}: {sent} sent, {failed} failed in the last hour"
                       + (" (Alertmanager's log names the error)" if failed else ""))


async def validate(ctx: DeployContext, modules: list[Module]) -> list[CheckResult]:
    site = ctx.site
    monitors = layout.monitors(site)
    expected_targets = len(scrape.targets(site, modules))
    expected_rules = len(rules.rule_names(site, modules))
    settings = site.settings(MonitoringSettings)
    results: list[CheckResult] = []
    for server in monitors:
        prometheus = api.prometheus(site, server)
        try:
            results += await _prometheus(prometheus, server.hostname,
                                         expected_targets, expected_rules, len(monitors),
                                         settings.scrape_interval_s)
        except Exception as exc:
            results.append(CheckResult(f"Prometheus on {server.hostname} answers", False, describe(exc)))
        try:
            results.append(await _alertmanager(api.alertmanager(site, server), server.hostname, len(monitors)))
        except Exception as exc:
            results.append(CheckResult(f"Alertmanager on {server.hostname} answers", False, describe(exc)))
        try:
            results.append(await _pages(prometheus, server.hostname, settings.notify))
        except Exception as exc:
            results.append(CheckResult(f"pages delivered by Alertmanager on {server.hostname}", False,
                                       f"Prometheus on {server.hostname}: {describe(exc)}"))
    boards = dashboards.dashboards(site, modules)
    results.append(CheckResult("Grafana dashboards served", False,
                               f"no Grafana server in this version: {len(boards)} dashboards rendered to "
                               f"{layout.host_paths(site).dashboards} for one to provision", available=False))
    return results
