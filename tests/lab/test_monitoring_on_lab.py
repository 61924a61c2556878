"""Monitoring on the lab with real Prometheus, Alertmanager and exporters: deploy, re-run, every
target up, every dashboard query answered, least-privilege exporter logins, and the alerts a
PostgreSQL and a Redis drill cause, fired and resolved.

The site here is the lab's with the haproxy, db, redis, monitor and app servers only (PostgreSQL
and Redis are what is drilled), so every target it declares is one that runs; it scrapes and
evaluates every 2 s and pages after 4 s."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from engine_runs import Run, cleanup, drill_round, install, validate  # tests/lab is on sys.path

from keybuzz.drills.alerts import AlertTiming
from keybuzz.lab import Lab
from keybuzz.modules.monitoring import MODULE, api, dashboards, layout
from keybuzz.modules.postgres import MODULE as POSTGRES
from keybuzz.modules.redis import MODULE as REDIS
from keybuzz.registry import load_site, site_modules
from keybuzz.site import Site
from keybuzz.site.writer import ServerRow, servers_tsv

pytestmark = pytest.mark.lab
ROLES = {"haproxy", "db", "redis", "monitor", "app"}


def _partial_site(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    kept = [s for s in load_site(source).servers if set(s.roles) & ROLES]
    rows = [ServerRow(s.hostname, str(s.private_ip), s.roles, fqdn=s.fqdn or "") for s in kept]
    (target / "servers.tsv").write_text(servers_tsv(rows, "the lab's servers of the drilled modules and monitoring"))
    hostnames = {s.hostname for s in kept}
    config = yaml.safe_load((target / "keybuzz.yaml").read_text())
    config["volumes"] = [v for v in config.get("volumes", []) if v.get("server") in hostnames]
    # Faster than the lab site's 5 s: this site is small and nothing else runs while it is drilled.
    config["monitoring"] = {"scrape_interval_s": 2, "evaluation_interval_s": 2, "down_for_s": 4, "lag_for_s": 20}
    (target / "keybuzz.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = load_site(_partial_site(lab.site_dir, tmp_path_factory.mktemp("monitoring") / "site"))
    cleanup(site, MODULE, purge_data=True)
    for module in (POSTGRES, REDIS):
        install(site, module)
    yield site
    cleanup(site, MODULE, purge_data=True)  # the other modules' drills run without alerts to wait for


@pytest.fixture(scope="module")
def first_install(site: Site) -> Run:
    run = install(site, MODULE)
    print(f"\nmonitoring deploy: {run.seconds:.1f} s, {run.stats.changes} changes, {run.stats.restarts} starts")
    return run


def prometheus(site: Site) -> str:
    return layout.prometheus_urls(site)[0]


def test_deploy_validate_then_rerun_changes_nothing(site: Site, first_install: Run) -> None:
    assert first_install.stats.changes > 0
    results = validate(site, MODULE)
    failed = [r for r in results if r.available and not r.ok]
    assert not failed, failed
    names = " ".join(r.name for r in results)
    assert "every target up" in names and "every alert rule loaded" in names and "Alertmanager" in names
    assert any(not r.available and "no Grafana server" in r.detail for r in results)
    again = install(site, MODULE)
    print(f"\nmonitoring re-run: {again.seconds:.1f} s")
    assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output


def test_every_target_of_the_site_is_scraped_and_up(site: Site, first_install: Run) -> None:
    targets = asyncio.run(api.targets(prometheus(site)))
    jobs = {t.job for t in targets}
    assert {"node", "patroni", "postgres", "redis", "sentinel", "haproxy-postgres", "haproxy-redis",
            "prometheus", "alertmanager"} <= jobs
    assert {t.hostname for t in targets if t.job == "node"} == {s.hostname for s in site.servers}
    assert [t for t in targets if t.health != "up"] == []


def test_every_dashboard_query_returns_series(site: Site, first_install: Run) -> None:
    boards = dashboards.dashboards(site, site_modules(site))
    assert set(boards) == {"postgres", "redis"}
    for name, board in boards.items():
        for panel in board["panels"]:
            expr = panel["targets"][0]["expr"]
            series = asyncio.run(api.query(prometheus(site), expr))
            assert series, f"{name} / {panel['title']}: {expr} returned nothing"


def test_exporter_logins_read_statistics_only(site: Site, first_install: Run) -> None:
    server = next(s for s in site.servers if s.has("redis"))
    client = redis.Redis(host=str(server.private_ip), port=6379, username=site.secret("redis", "REDIS_MONITOR_USER"),
                         password=site.secret("redis", "REDIS_MONITOR_PASSWORD"), socket_timeout=3)
    assert "redis_version" in client.info()
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.get("any-key")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("any-key", "x")
    rows = asyncio.run(api.query(prometheus(site), 'pg_up{job="postgres"} == 1'))
    assert len(rows) == len(site.with_role("db"))  # the pg_monitor login works on every node


def _fired_and_resolved(alerts: list[AlertTiming], name: str, hostname: str) -> AlertTiming:
    timing = next((t for t in alerts if t.alert.startswith(name + "{") and f"hostname={hostname}" in t.alert), None)
    assert timing is not None, f"{name} on {hostname} not seen; seen: {[t.alert for t in alerts]}"
    assert timing.firing_s is not None and timing.resolved_s is not None, timing
    return timing


@pytest.mark.parametrize(("module", "scenario"), [(POSTGRES, "poweroff-leader"), (REDIS, "poweroff-master")])
def test_drill_records_the_alerts_it_fires_and_their_resolution(site: Site, lab: Lab, first_install: Run,
                                                                 module: object, scenario: str) -> None:
    result = drill_round(site, lab, module, scenario)  # type: ignore[arg-type]
    print(f"\n{scenario}: outage {result.outage_s:.2f} s, lost {result.lost}/{result.acked}, fault held "
          f"{result.fault_held_s} s for the alerts; alerts "
          + "; ".join(f"{t.alert} pending {t.pending_s} firing {t.firing_s} resolved {t.resolved_s}"
                      for t in result.alerts))
    assert result.lost == 0
    down = _fired_and_resolved(result.alerts, "HostDown", result.target)
    assert down.firing_s is not None and down.resolved_s is not None and down.firing_s < down.resolved_s
    assert not [t for t in result.alerts if t.resolved_s is None], "alerts still active after the round"
