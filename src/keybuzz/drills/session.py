"""Run N rounds of one scenario of one module: used by `keybuzz failover`, bench/ and tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from keybuzz.contract import DeployContext, DrillContext, Faults, Module
from keybuzz.drills.alerts import AlertTimes, AlertWatch
from keybuzz.drills.report import DrillReport, RoundResult
from keybuzz.drills.runner import measure_round
from keybuzz.modules.monitoring import api
from keybuzz.modules.monitoring.scrape import MAX_SCRAPE_TIMEOUT_S
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.poll import describe
from keybuzz.site import Site


class NotDrillable(Exception):
    pass


def check_drillable(module: Module) -> Module:
    if not module.scenarios:
        raise NotDrillable(f"module {module.number} {module.name} has no failover drill in this version")
    return module


async def run_drill(module: Module, ctx: DeployContext, faults: Faults, scenario: str, rounds: int,
                    options: Mapping[str, object] | None = None,
                    on_round: Callable[[RoundResult], None] | None = None, *,
                    hold_for_alerts: bool = True) -> DrillReport:
    """Prepare once, then measure `rounds` rounds; each round targets the primary of that moment.
    When the site's Prometheus answers, the alerts are recorded and (`hold_for_alerts`) a fault is
    kept on while an alert on its server is pending, so the drill shows whether it would page."""
    drillable = check_drillable(module)
    scenarios = drillable.scenarios
    if scenario not in scenarios:
        raise NotDrillable(f"unknown scenario {scenario!r} for {module.name}; known: {', '.join(scenarios)}")
    dctx = DrillContext(ctx, faults, dict(options or {}))
    prometheus, alerts_note = await prometheus_for_alerts(ctx.site)
    try:
        await drillable.prepare_drill(dctx)
        report = DrillReport(module.name, scenario, drillable.drill_settings(dctx), alerts_note=alerts_note)
        for number in range(1, rounds + 1):
            plan = await drillable.plan_round(dctx, scenario, number)
            result = await measure_round(number, plan, AlertWatch(prometheus) if prometheus else None,
                                         alert_times(ctx.site, hold_for_alerts))
            report.rounds.append(result)
            if on_round:
                on_round(result)
    finally:
        await drillable.finish_drill(dctx)
    return report


async def prometheus_for_alerts(site: Site) -> tuple[list[api.WebApi], str]:
    """The site's Prometheus servers when one answers; otherwise none, and why alerts go unrecorded."""
    urls = api.prometheus_servers(site)
    if not urls:
        return [], "not recorded: no monitor servers"
    errors = []
    for url in urls:
        try:
            if await api.ready(url):
                return urls, ""
            errors.append(f"{url} not ready")
        except Exception as exc:
            errors.append(f"{url}: {describe(exc)}")
    return [], "not recorded: no Prometheus answers (" + "; ".join(errors) + ")"


def alert_times(site: Site, hold: bool) -> AlertTimes:
    """From the site's settings: a failed scrape (interval + timeout) and an evaluation to notice a
    fault; its `for:` and two evaluations more to fire; after the recovery, a few scrapes and
    evaluations, a `for:` and a margin for the alerts to resolve."""
    s = site.settings(MonitoringSettings)
    notice = s.scrape_interval_s + min(s.scrape_interval_s, MAX_SCRAPE_TIMEOUT_S) + s.evaluation_interval_s
    return AlertTimes(notice_s=notice if hold else 0.0,
                      hold_s=notice + s.down_for_s + 2 * s.evaluation_interval_s + 5 if hold else 0.0,
                      settle_s=3 * (s.scrape_interval_s + s.evaluation_interval_s) + s.down_for_s + 30)
