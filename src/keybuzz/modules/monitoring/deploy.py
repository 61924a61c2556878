"""Deploy: converge every host (exporters, Prometheus, Alertmanager), then wait until each
Prometheus has loaded every rule, scraped every target once and evaluated its rules over those
scrapes, so validate reads real states."""

from __future__ import annotations

import asyncio

from keybuzz.contract import DeployContext, Module
from keybuzz.modules.monitoring import api, layout, rules, scrape
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.poll import NotYet, wait_until
from keybuzz.render import Plans

SETTLE_S = 60  # Prometheus' start (TSDB replay) and its first rounds of scrapes and evaluations


async def deploy(ctx: DeployContext, plans: Plans, modules: list[Module]) -> None:
    async with ctx.phase("converge exporters, Prometheus and Alertmanager"):
        await ctx.converge(list(plans), plans)
    if ctx.dry_run:
        return
    settings = ctx.site.settings(MonitoringSettings)
    expected = len(rules.rule_names(ctx.site, modules))
    expected_targets = len(scrape.targets(ctx.site, modules))
    monitors = layout.monitors(ctx.site)
    timeout = SETTLE_S + 3 * max(settings.scrape_interval_s, settings.evaluation_interval_s)
    async with ctx.phase("wait for every rule loaded, every target scraped once, the Alertmanagers clustered"):
        for server in monitors:
            base, alertmanager = api.prometheus(ctx.site, server), api.alertmanager(ctx.site, server)

            async def settled(base: api.WebApi = base, alertmanager: api.WebApi = alertmanager) -> bool:
                loaded = await api.rules(base)
                if len(loaded) != expected or any(r.health == "unknown" for r in loaded):
                    raise NotYet(f"{len(loaded)} of {expected} rules loaded and evaluated")
                targets = await api.targets(base)
                scraped = [t for t in targets if t.health != "unknown"]
                if len(scraped) != expected_targets:
                    raise NotYet(f"{len(scraped)} of {expected_targets} targets scraped")
                if len(await api.active_alertmanagers(base)) != len(monitors):
                    raise NotYet("Prometheus does not send to every Alertmanager yet")
                status, _ = await api.alertmanager_peers(alertmanager)
                if len(monitors) > 1 and status != "ready":
                    raise NotYet(f"Alertmanager cluster {status}")
                return True

            await wait_until("Prometheus to load every rule and scrape every target", settled, timeout=timeout,
                             interval=1.0, where=server.hostname, module=layout.MODULE)
        # Rules evaluated before the first scrapes see no series: an "absent" rule (no leader, no
        # master) can fire on a fresh start and resolves at the first evaluation over real data. A
        # re-run that changed nothing started nothing fresh.
        if ctx.changed_hosts():
            await asyncio.sleep(settings.evaluation_interval_s + 1)
