"""Monitoring on the lab with real Prometheus, Alertmanager and exporters: deploy, re-run, every
target up, every dashboard query answered, least-privilege exporter logins, and the alerts a
PostgreSQL and a Redis drill cause, fired and resolved.

The site here is the lab's with the haproxy, db, redis, monitor and app servers only (PostgreSQL
and Redis are what is drilled), so every target it declares is one that runs; it scrapes and
evaluates every 2 s and pages after 4 s, to a webhook: a small HTTP server on the app server that
keeps what Alertmanager posts (a stand-in for the paging service)."""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import shutil
import time
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
    config["monitoring"] = {"scrape_interval_s": 2, "evaluation_interval_s": 2, "down_for_s": 4, "lag_for_s": 20,
                            "notify": {"receiver": "webhook", "group_wait_s": 1, "group_interval_s": 5}}
    (target / "keybuzz.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    sink = next(s for s in kept if s.has("app"))
    env = target / "credentials" / "alerting.env"
    env.write_text(f"ALERTING_WEBHOOK_URL_SECRET=http://{sink.private_ip}:{SINK_PORT}{SINK_PATH}\n")
    env.chmod(0o600)
    return target


# The paging service's stand-in: every POST appended as one JSON line {path, at, body}.
SINK_PROGRAM = r"""
import http.server, json, sys, time
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(sys.argv[2], "a") as out:
            out.write(json.dumps({"path": self.path, "at": time.time(), "body": json.loads(body)}) + "\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Sink).serve_forever()
"""
SINK_PORT = 9099
SINK_PATH = f"/page/{secrets.token_hex(12)}"  # the secret part of the URL, as a paging service's token
SINK_LOG = "/tmp/keybuzz-test-pages.jsonl"  # the host's own /tmp
SINK_PID = "/tmp/keybuzz-test-pages.pid"


def _sink_host(site: Site) -> str:
    return next(s.hostname for s in site.servers if s.has("app"))


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = load_site(_partial_site(lab.site_dir, tmp_path_factory.mktemp("monitoring") / "site"))
    cleanup(site, MODULE, purge_data=True)
    for module in (POSTGRES, REDIS):
        install(site, module)
    sink = _sink_host(site)
    lab.exec(sink, ["sh", "-c", f"rm -f {SINK_LOG}; nohup python3 -c {shlex.quote(SINK_PROGRAM)} {SINK_PORT} "
                                f"{SINK_LOG} >/dev/null 2>&1 </dev/null & echo $! > {SINK_PID}"], check=True)
    yield site
    lab.exec(sink, ["sh", "-c", f"kill $(cat {SINK_PID}) 2>/dev/null; rm -f {SINK_PID} {SINK_LOG}"])
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
    assert [r.ok for r in results if r.name.startswith("pages delivered")] == [True, True]  # a webhook, no failure
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


def _pages(lab: Lab, site: Site) -> list[dict]:
    """What the webhook received, each Alertmanager message with the URL path it was posted to."""
    text = lab.exec(_sink_host(site), ["sh", "-c", f"cat {SINK_LOG} 2>/dev/null || true"]).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _paged_and_cleared(lab: Lab, site: Site, name: str, hostname: str, timeout: float = 60.0) -> dict[str, float]:
    """Waits until the webhook got the alert firing and then resolved; when each first arrived (epoch s)."""
    deadline, received = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        messages = _pages(lab, site)
        assert {m["path"] for m in messages} <= {SINK_PATH}, "posted to another URL than the site's"
        received = {}
        for message in messages:
            for alert in message["body"]["alerts"]:
                if alert["labels"].get("alertname") == name and alert["labels"].get("hostname") == hostname:
                    received.setdefault(alert["status"], message["at"])
        if {"firing", "resolved"} <= set(received):
            return received
        time.sleep(1)
    raise AssertionError(f"{name} on {hostname}: the webhook got {sorted(received) or 'nothing'} in {timeout:g} s")


@pytest.mark.parametrize(("module", "scenario"), [(POSTGRES, "poweroff-leader"), (REDIS, "poweroff-master")])
def test_drill_records_the_alerts_it_fires_and_their_resolution(site: Site, lab: Lab, first_install: Run,
                                                                 module: object, scenario: str) -> None:
    started = time.time()
    result = drill_round(site, lab, module, scenario)  # type: ignore[arg-type]
    print(f"\n{scenario}: outage {result.outage_s:.2f} s, lost {result.lost}/{result.acked}, fault held "
          f"{result.fault_held_s} s for the alerts; alerts "
          + "; ".join(f"{t.alert} pending {t.pending_s} firing {t.firing_s} resolved {t.resolved_s}"
                      for t in result.alerts))
    assert result.lost == 0
    down = _fired_and_resolved(result.alerts, "HostDown", result.target)
    assert down.firing_s is not None and down.resolved_s is not None and down.firing_s < down.resolved_s
    assert not [t for t in result.alerts if t.resolved_s is None], "alerts still active after the round"
    received = _paged_and_cleared(lab, site, "HostDown", result.target)  # the page went out, and its all-clear
    print(f"webhook: HostDown page {received['firing'] - started:.1f} s after the round began, "
          f"all-clear {received['resolved'] - started:.1f} s")
