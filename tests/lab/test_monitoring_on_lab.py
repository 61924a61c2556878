"""Monitoring on the lab with real Prometheus, Alertmanager and exporters: deploy, re-run, every
target up, every dashboard query answered, least-privilege exporter logins, the web APIs behind the
site's login on private addresses, and the alerts a PostgreSQL and a Redis drill cause, fired and
resolved (read with the login).

The site here is the lab's with the haproxy, db, redis, monitor and app servers only (PostgreSQL
and Redis are what is drilled), so every target it declares is one that runs; it scrapes and
evaluates every 2 s and pages after 4 s, to a webhook: a small HTTP server on the app server that
keeps what Alertmanager posts (a stand-in for the paging service)."""

from __future__ import annotations

import asyncio
import json
import re
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

from keybuzz import jsonhttp
from keybuzz.drills.alerts import AlertTiming
from keybuzz.lab import Lab
from keybuzz.modules.monitoring import MODULE, api, dashboards, layout
from keybuzz.modules.postgres import MODULE as POSTGRES
from keybuzz.modules.redis import MODULE as REDIS
from keybuzz.modules.redis.layout import MASTER_NAME
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


# The paging service's stand-in on the app server's private address: every POST appended as one
# JSON line {path, at, body}.
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
http.server.ThreadingHTTPServer((sys.argv[3], int(sys.argv[1])), Sink).serve_forever()
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
                                f"{SINK_LOG} {site.server(sink).private_ip} >/dev/null 2>&1 </dev/null & "
                                f"echo $! > {SINK_PID}"], check=True)
    yield site
    lab.exec(sink, ["sh", "-c", f"kill $(cat {SINK_PID}) 2>/dev/null; rm -f {SINK_PID} {SINK_LOG}"])
    cleanup(site, MODULE, purge_data=True)  # the other modules' drills run without alerts to wait for


@pytest.fixture(scope="module")
def first_install(site: Site) -> Run:
    run = install(site, MODULE)
    print(f"\nmonitoring deploy: {run.seconds:.1f} s, {run.stats.changes} changes, {run.stats.restarts} starts")
    return run


def prometheus(site: Site) -> api.WebApi:
    return api.prometheus(site, layout.monitors(site)[0])


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


def _status(url: str, auth: str | None, method: str = "GET", body: object = None) -> int:
    status, _ = asyncio.run(jsonhttp.request(url, method=method, body=body, auth=auth, timeout=5))
    return status


def test_the_web_apis_want_the_sites_login_and_listen_on_private_addresses(site: Site, lab: Lab,
                                                                            first_install: Run) -> None:
    """Without the login (or with a wrong password) Prometheus and Alertmanager answer 401: no query,
    no configuration (Alertmanager's status holds the webhook URL), no silence; with it, 200. Their
    ports and the node exporter's are bound to the server's private address, never a wildcard."""
    wrong = jsonhttp.basic_auth(layout.web_login(site)[0], "not-the-password")
    silence = {"matchers": [{"name": "alertname", "value": "HostDown", "isRegex": False}], "createdBy": "test",
               "comment": "must be refused", "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T01:00:00Z"}
    for server in layout.monitors(site):
        prometheus_url, alertmanager_url = api.prometheus(site, server).url, api.alertmanager(site, server).url
        for url in (f"{prometheus_url}/api/v1/query?query=up", f"{prometheus_url}/metrics",
                    f"{alertmanager_url}/api/v2/status"):
            assert (_status(url, None), _status(url, wrong), _status(url, api.prometheus(site, server).auth)) == (
                401, 401, 200), url
        assert _status(f"{alertmanager_url}/api/v2/silences", None, "POST", silence) == 401
    ports = {layout.PROMETHEUS_PORT, layout.ALERTMANAGER_PORT, layout.ALERTMANAGER_CLUSTER_PORT,
             layout.NODE_EXPORTER_PORT}
    for server in site.servers:
        listening = lab.exec(server.hostname, ["ss", "-Hlntu"], check=True).stdout
        local = [line.split()[4] for line in listening.splitlines()]
        mine = [address for address in local if int(address.rsplit(":", 1)[1]) in ports]
        assert mine and {a.rsplit(":", 1)[0] for a in mine} == {str(server.private_ip)}, (server.hostname, mine)


def test_every_dashboard_query_returns_series(site: Site, first_install: Run) -> None:
    boards = dashboards.dashboards(site, site_modules(site))
    assert set(boards) == {"postgres", "redis"}
    for name, board in boards.items():
        for panel in board["panels"]:
            expr = panel["targets"][0]["expr"]
            series = asyncio.run(api.query(prometheus(site), expr))
            assert series, f"{name} / {panel['title']}: {expr} returned nothing"


def _monitor_login(site: Site, ip: str, port: int) -> redis.Redis:
    return redis.Redis(host=ip, port=port, username=site.secret("redis", "REDIS_MONITOR_USER"),
                       password=site.secret("redis", "REDIS_MONITOR_PASSWORD"), socket_timeout=3)


def _metrics(ip: str, port: int) -> str:
    status, text = asyncio.run(jsonhttp.request(f"http://{ip}:{port}/metrics", timeout=5))
    assert status == 200, text
    return str(text)


def test_exporter_logins_read_statistics_only(site: Site, lab: Lab, first_install: Run) -> None:
    servers = site.with_role("redis")
    for server in servers:
        client = _monitor_login(site, str(server.private_ip), 6379)
        assert "redis_version" in client.info()
        # No data and no secret: keys, CONFIG GET (requirepass, masterauth in clear), slow commands' arguments.
        for command in (("GET", "any-key"), ("SET", "any-key", "x"), ("CONFIG", "GET", "requirepass"),
                        ("CONFIG", "GET", "masterauth"), ("CONFIG", "GET", "*"), ("SLOWLOG", "GET", "1")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        sentinel = _monitor_login(site, str(server.private_ip), 26379)
        assert sentinel.execute_command("SENTINEL", "CKQUORUM", MASTER_NAME)
        for command in (("SENTINEL", "CONFIG", "GET", "*"), ("SENTINEL", "FAILOVER", MASTER_NAME),
                        ("CONFIG", "GET", "*")):
            with pytest.raises(redis.exceptions.ResponseError):
                sentinel.execute_command(*command)
    # ... while the exporters still export, on the private address only.
    ip = str(servers[0].private_ip)
    exported = _metrics(ip, 9121)
    assert "\nredis_up 1\n" in exported and "\nredis_memory_max_bytes " in exported
    assert "redis_commands_duration_seconds_total" in exported and "\nredis_slowlog_length " in exported
    assert "redis_config_maxmemory" not in exported  # CONFIG GET is not asked
    quorum = re.search(r'^redis_sentinel_master_ckquorum_status\{[^}]*message="([^"]*)"\} (\S+)$', _metrics(ip, 9122),
                       re.M)
    assert quorum and quorum.group(2) == "1" and quorum.group(1).startswith("OK"), quorum
    listening = lab.exec(servers[0].hostname, ["ss", "-Hltn"], check=True).stdout
    assert {f"{ip}:9121", f"{ip}:9122"} <= {line.split()[3] for line in listening.splitlines()}, listening
    admin = redis.Redis(host=ip, port=6379, password=site.secret("redis", "REDIS_PASSWORD"), socket_timeout=3,
                        decode_responses=True)
    refused = {e["object"] for e in admin.acl_log() if e["client-info"].get("name") == "redis_exporter"}
    assert refused <= {"slowlog|get"}, refused  # what the exporter asks and is refused, each scrape
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


def _paged_and_cleared(lab: Lab, site: Site, name: str, hostname: str, since: float,
                       timeout: float = 60.0) -> dict[str, float]:
    """Waits until the webhook got the alert firing and then resolved, both after `since` (epoch s: an
    earlier page of the same host is not this round's); when each first arrived."""
    deadline, received = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        messages = _pages(lab, site)
        assert {m["path"] for m in messages} <= {SINK_PATH}, "posted to another URL than the site's"
        received = {}
        for message in (m for m in messages if m["at"] >= since):
            for alert in message["body"]["alerts"]:
                if alert["labels"].get("alertname") == name and alert["labels"].get("hostname") == hostname:
                    received.setdefault(alert["status"], message["at"])
        if {"firing", "resolved"} <= set(received):
            return received
        time.sleep(1)
    raise AssertionError(f"{name} on {hostname}: the webhook got {sorted(received) or 'nothing'} in {timeout:g} s")


# The PostgreSQL power-off drill is test_postgres.py's; its alerts (HostDown, PostgresNoLeader) are timed per
# module by bench/monitoring.py. One round here proves the path: recorded, held, fired, paged, resolved.
@pytest.mark.parametrize(("module", "scenario"), [(REDIS, "poweroff-master")])
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
    received = _paged_and_cleared(lab, site, "HostDown", result.target, started)  # the page went out, and its all-clear
    print(f"webhook: HostDown page {received['firing'] - started:.1f} s after the round began, "
          f"all-clear {received['resolved'] - started:.1f} s")
