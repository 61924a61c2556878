"""The monitoring module's rendered files, parsed back and checked by promtool (Prometheus' own
checker: `promtool check config`, `check rules`, `test rules`; `amtool check-config`): the scrape configuration from the
site, one unit test per alert rule (it fires on its fault, not on a healthy or a brief one), the
dashboards' queries, the exporters' secrets, the ports opened to the monitor servers only, the
web login of Prometheus and Alertmanager (`promtool check web-config`) and the private binds."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import pytest
import yaml

from keybuzz.containers import ContainerCli
from keybuzz.errors import InputErrors
from keybuzz.modules.monitoring import MODULE, dashboards, layout, rules, scrape
from keybuzz.modules.monitoring.module import READERS
from keybuzz.registry import host_ports, site_modules
from keybuzz.render import FileSpec, Plans
from keybuzz.site import Site

PROMTOOL = shutil.which("promtool")


@pytest.fixture
def plans(site: Site) -> Plans:
    return MODULE.render(site)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Prometheus' own checker; never skipped: `make test` installs it (Debian package prometheus)."""
    if PROMTOOL is None:
        pytest.fail("promtool is missing: run scripts/setup-machine.sh (it installs the Debian package prometheus)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False, timeout=60)


def monitor_file(plans: Plans, site: Site, path: str) -> str:
    return plans[layout.monitors(site)[0].hostname].file(path).content


@dataclass(frozen=True)
class Case:
    """Input series (promtool's expanding notation, one sample per 15 s) that make the alert fire
    with `labels` (besides its severity and module); `healthy` series that must not."""

    series: list[tuple[str, str]]
    labels: dict[str, str]
    healthy: list[tuple[str, str]] = field(default_factory=list)


def _lb(job: str, proxy: str, value: str) -> tuple[str, str]:
    return (f'haproxy_backend_active_servers{{job="{job}",proxy="{proxy}",hostname="haproxy-01"}}', value)


def _lb_labels(job: str, proxy: str) -> dict[str, str]:
    return {"job": job, "proxy": proxy, "hostname": "haproxy-01"}


def _backend_cases(job: str, proxy: str, camel: str, single_writer: bool) -> dict[str, Case]:
    cases = {f"HAProxyBackendDown{camel}": Case([_lb(job, proxy, "0x20")], _lb_labels(job, proxy),
                                                [_lb(job, proxy, "1x20")])}
    if single_writer:
        cases[f"HAProxyTwoWriters{camel}"] = Case([_lb(job, proxy, "2x20")], _lb_labels(job, proxy),
                                                  [_lb(job, proxy, "1x20")])
    return cases


RULE_GROUP = 'job="prometheus",hostname="monitor-01",rule_group="g"'
FS = 'fstype="xfs",hostname="db-master-01",mountpoint="/opt/keybuzz/postgres/data"'
CASES: dict[str, Case] = {
    "HostDown": Case([('up{job="node",hostname="db-1"}', "0x20")], {"job": "node", "hostname": "db-1"},
                     [('up{job="node",hostname="db-1"}', "0 0 1x18")]),  # down 15 s: shorter than down_for
    "TargetDown": Case([('up{job="patroni",hostname="db-1"}', "0x20")], {"job": "patroni", "hostname": "db-1"},
                       [('up{job="patroni",hostname="db-1"}', "1x20"), ('up{job="node",hostname="db-1"}', "0x20")]),
    "DiskAlmostFull": Case([(f"node_filesystem_avail_bytes{{{FS}}}", "10x20"),
                            (f"node_filesystem_size_bytes{{{FS}}}", "100x20")],
                           {"fstype": "xfs", "hostname": "db-master-01", "mountpoint": "/opt/keybuzz/postgres/data"},
                           [(f"node_filesystem_avail_bytes{{{FS}}}", "30x20"),
                            (f"node_filesystem_size_bytes{{{FS}}}", "100x20")]),
    "PostgresNoLeader": Case([('patroni_primary{job="patroni",hostname="db-1"}', "0x20"),
                              ('patroni_primary{job="patroni",hostname="db-2"}', "0x20")], {},
                             [('patroni_primary{job="patroni",hostname="db-1"}', "1x20"),
                              ('patroni_primary{job="patroni",hostname="db-2"}', "0x20")]),
    "PostgresTwoLeaders": Case([('patroni_primary{job="patroni",hostname="db-1"}', "1x20"),
                                ('patroni_primary{job="patroni",hostname="db-2"}', "1x20")], {},
                               [('patroni_primary{job="patroni",hostname="db-1"}', "1x20"),
                                ('patroni_primary{job="patroni",hostname="db-2"}', "0x20")]),
    "PostgresNotRunning": Case([('patroni_postgres_running{job="patroni",hostname="db-1"}', "0x20")],
                               {"job": "patroni", "hostname": "db-1"},
                               [('patroni_postgres_running{job="patroni",hostname="db-1"}', "1x20")]),
    "PostgresReplicaNotStreaming": Case(
        [('patroni_replica{job="patroni",hostname="db-2"}', "1x20"),
         ('patroni_postgres_streaming{job="patroni",hostname="db-2"}', "0x20")], {"job": "patroni", "hostname": "db-2"},
        [('patroni_replica{job="patroni",hostname="db-2"}', "1x20"),
         ('patroni_postgres_streaming{job="patroni",hostname="db-2"}', "1x20")]),
    "PostgresReplicationLag": Case(
        [('patroni_xlog_location{job="patroni",hostname="db-1"}', "1000000000x20"),
         ('patroni_xlog_replayed_location{job="patroni",hostname="db-2"}', "0x20"),
         ('patroni_replica{job="patroni",hostname="db-2"}', "1x20")], {"job": "patroni", "hostname": "db-2"},
        [('patroni_xlog_location{job="patroni",hostname="db-1"}', "1000000000x20"),
         ('patroni_xlog_replayed_location{job="patroni",hostname="db-2"}', "999000000x20"),
         ('patroni_replica{job="patroni",hostname="db-2"}', "1x20")]),
    "PostgresExporterCannotConnect": Case([('pg_up{job="postgres",hostname="db-1"}', "0x20")],
                                          {"job": "postgres", "hostname": "db-1"},
                                          [('pg_up{job="postgres",hostname="db-1"}', "1x20")]),
    **_backend_cases("haproxy-postgres", "postgres_write", "PostgresWrite", single_writer=True),
    **_backend_cases("haproxy-postgres", "postgres_read", "PostgresRead", single_writer=False),
    "RedisDown": Case([('redis_up{job="redis",hostname="redis-1"}', "0x20")], {"job": "redis", "hostname": "redis-1"},
                      [('redis_up{job="redis",hostname="redis-1"}', "1x20"),
                       ('redis_up{job="sentinel",hostname="redis-1"}', "0x20")]),
    "RedisNoMaster": Case([('redis_instance_info{job="redis",role="slave",hostname="redis-1"}', "1x20")], {},
                          [('redis_instance_info{job="redis",role="master",hostname="redis-1"}', "1x20")]),
    "RedisTwoMasters": Case([('redis_instance_info{job="redis",role="master",hostname="redis-1"}', "1x20"),
                             ('redis_instance_info{job="redis",role="master",hostname="redis-2"}', "1x20")], {},
                            [('redis_instance_info{job="redis",role="master",hostname="redis-1"}', "1x20"),
                             ('redis_instance_info{job="redis",role="slave",hostname="redis-2"}', "1x20")]),
    "RedisMasterWithoutReplicas": Case(
        [('redis_connected_slaves{job="redis",hostname="redis-1"}', "0x20"),
         ('redis_instance_info{job="redis",role="master",hostname="redis-1"}', "1x20")],
        {"job": "redis", "hostname": "redis-1"},
        [('redis_connected_slaves{job="redis",hostname="redis-1"}', "2x20"),
         ('redis_instance_info{job="redis",role="master",hostname="redis-1"}', "1x20"),
         ('redis_connected_slaves{job="redis",hostname="redis-2"}', "0x20")]),
    "SentinelsDisagree": Case(
        [('redis_sentinel_master_status{job="sentinel",hostname="redis-1",master_address="10.0.0.123:6379"}', "1x20"),
         ('redis_sentinel_master_status{job="sentinel",hostname="redis-2",master_address="10.0.0.124:6379"}', "1x20")],
        {},
        [('redis_sentinel_master_status{job="sentinel",hostname="redis-1",master_address="10.0.0.123:6379"}', "1x20"),
         ('redis_sentinel_master_status{job="sentinel",hostname="redis-2",master_address="10.0.0.123:6379"}', "1x20")]),
    "SentinelQuorumLost": Case([('redis_sentinel_masters{job="sentinel",hostname="redis-1"}', "1x20")], {},
                               [('redis_sentinel_masters{job="sentinel",hostname="redis-1"}', "1x20"),
                                ('redis_sentinel_masters{job="sentinel",hostname="redis-2"}', "1x20")]),
    **_backend_cases("haproxy-redis", "redis", "Redis", single_writer=True),
    "RabbitmqAlarm": Case([('rabbitmq_alarms_free_disk_space_watermark{job="rabbitmq",hostname="queue-01"}', "1x20")],
                          {"job": "rabbitmq", "hostname": "queue-01"},
                          [('rabbitmq_alarms_free_disk_space_watermark{job="rabbitmq",hostname="queue-01"}', "0x20")]),
    "RabbitmqNodeDown": Case([('up{job="rabbitmq",hostname="queue-01"}', "1x20"),
                              ('up{job="rabbitmq",hostname="queue-02"}', "0x20"),
                              ('up{job="rabbitmq",hostname="queue-03"}', "1x20")], {},
                             [(f'up{{job="rabbitmq",hostname="queue-0{i}"}}', "1x20") for i in (1, 2, 3)]),
    **_backend_cases("haproxy-rabbitmq", "rabbitmq", "Rabbitmq", single_writer=False),
    "ObjectStoreNodeDown": Case(
        [('haproxy_server_status{job="haproxy-minio",proxy="s3",state="UP",server="minio-01",hostname="haproxy-01"}',
          "0x20")], {"server": "minio-01"},
        [('haproxy_server_status{job="haproxy-minio",proxy="s3",state="UP",server="minio-01",hostname="haproxy-01"}',
          "1x20")]),
    **_backend_cases("haproxy-minio", "s3", "S3", single_writer=False),
    "MariadbDown": Case([('mysql_up{job="mariadb",hostname="maria-01"}', "0x20")],
                        {"job": "mariadb", "hostname": "maria-01"},
                        [('mysql_up{job="mariadb",hostname="maria-01"}', "1x20")]),
    "GaleraNotPrimary": Case([('mysql_global_status_wsrep_cluster_status{job="mariadb",hostname="maria-01"}', "0x20")],
                             {"job": "mariadb", "hostname": "maria-01"},
                             [('mysql_global_status_wsrep_cluster_status{job="mariadb",hostname="maria-01"}', "1x20")]),
    "PrometheusRuleFailures": Case(
        [(f"prometheus_rule_evaluation_failures_total{{{RULE_GROUP}}}", "0+1x20")],
        {"job": "prometheus", "hostname": "monitor-01", "rule_group": "g"},
        [(f"prometheus_rule_evaluation_failures_total{{{RULE_GROUP}}}", "0x20")]),
    "PrometheusCannotNotify": Case(
        [('prometheus_notifications_errors_total{job="prometheus",hostname="monitor-01",alertmanager="a"}', "0+1x20")],
        {"job": "prometheus", "hostname": "monitor-01", "alertmanager": "a"},
        [('prometheus_notifications_errors_total{job="prometheus",hostname="monitor-01",alertmanager="a"}', "5x20")]),
    "AlertmanagerClusterDegraded": Case(
        [('alertmanager_cluster_members{job="alertmanager",hostname="monitor-01"}', "1x20")],
        {"job": "alertmanager", "hostname": "monitor-01"},
        [('alertmanager_cluster_members{job="alertmanager",hostname="monitor-01"}', "2x20")]),
    "GaleraNodeNotSynced": Case([('mysql_global_status_wsrep_local_state{job="mariadb",hostname="maria-01"}', "2x20")],
                                {"job": "mariadb", "hostname": "maria-01"},
                                [('mysql_global_status_wsrep_local_state{job="mariadb",hostname="maria-01"}', "4x20")]),
    "GaleraClusterTooSmall": Case(
        [('mysql_global_status_wsrep_cluster_size{job="mariadb",hostname="maria-01"}', "2x20")],
        {"job": "mariadb", "hostname": "maria-01"},
        [('mysql_global_status_wsrep_cluster_size{job="mariadb",hostname="maria-01"}', "3x20")]),
}


def _rule_files(site: Site) -> dict[str, dict]:
    return rules.rule_groups(site, site_modules(site))


def test_every_alert_rule_has_a_unit_test(site: Site) -> None:
    assert sorted(rules.rule_names(site, site_modules(site))) == sorted(CASES)


def test_rendered_rules_and_config_pass_promtool(plans: Plans, site: Site, tmp_path: Path) -> None:
    paths = layout.host_paths(site)
    files = []
    for name in _rule_files(site):
        path = tmp_path / f"{name}.yml"
        path.write_text(monitor_file(plans, site, f"{paths.rules_dir}/{name}.yml"))
        files.append(str(path))
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    config = tmp_path / "prometheus.yml"
    config.write_text(monitor_file(plans, site, paths.prometheus_yml))
    result = promtool("check", "config", "--syntax-only", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_rule_fires_on_its_fault_and_not_when_healthy(site: Site, tmp_path: Path) -> None:
    """`promtool test rules`: for each rule, its fault after the `for:` (4 min in), and healthy input.
    The rules are the rendered ones without their annotations (templates, checked by `check rules`
    above): promtool compares annotations verbatim."""
    tests, rule_paths = [], []
    for name, document in _rule_files(site).items():
        path = tmp_path / f"{name}.yml"
        for rule in document["groups"][0]["rules"]:
            del rule["annotations"]
        path.write_text(rules.dump(document))
        rule_paths.append(str(path))
        for rule in document["groups"][0]["rules"]:
            case = CASES[rule["alert"]]
            expected = [{"exp_labels": {**case.labels, **rule["labels"]}}]
            for series, alerts in ((case.series, expected), (case.healthy, [])):
                tests.append({"interval": "15s",
                              "input_series": [{"series": s, "values": v} for s, v in series],
                              "alert_rule_test": [{"eval_time": "4m", "alertname": rule["alert"],
                                                   "exp_alerts": alerts}]})
    test_file = tmp_path / "tests.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": rule_paths, "evaluation_interval": "15s", "tests": tests}))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert len(tests) == 2 * len(CASES)


def test_scrape_targets_come_from_the_site(site: Site, plans: Plans) -> None:
    config = yaml.safe_load(monitor_file(plans, site, layout.host_paths(site).prometheus_yml))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    node = {c["labels"]["hostname"]: c["targets"][0] for c in jobs["node"]["static_configs"]}
    assert node == {s.hostname: f"{s.private_ip}:{layout.NODE_EXPORTER_PORT}" for s in site.servers}
    assert {c["labels"]["hostname"] for c in jobs["patroni"]["static_configs"]} == {
        s.hostname for s in site.with_role("db")}
    assert {c["labels"]["hostname"] for c in jobs["sentinel"]["static_configs"]} == {
        s.hostname for s in site.with_role("redis")}
    assert {"postgres", "redis", "mariadb", "rabbitmq", "haproxy-postgres", "haproxy-redis", "haproxy-rabbitmq",
            "haproxy-minio", "prometheus", "alertmanager"} <= set(jobs)
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"{s.private_ip}:{layout.ALERTMANAGER_PORT}" for s in layout.monitors(site)]
    assert config["global"]["scrape_interval"] == "15s"
    assert sum(len(j["static_configs"]) for j in jobs.values()) == len(scrape.targets(site, site_modules(site)))


def test_k3s_scrape_configs_cover_the_same_targets(site: Site, plans: Plans) -> None:
    extra = yaml.safe_load(monitor_file(plans, site, layout.host_paths(site).k3s_scrape_configs))
    own = yaml.safe_load(monitor_file(plans, site, layout.host_paths(site).prometheus_yml))["scrape_configs"]
    assert [j["job_name"] for j in extra] == [f"keybuzz-{j['job_name']}" for j in own
                                              if j["job_name"] not in ("prometheus", "alertmanager")]
    assert all(j["static_configs"] for j in extra)


def test_exporters_run_beside_their_services_with_secret_logins(site: Site, plans: Plans, kb) -> None:
    secrets = kb.secret_values(site.root)
    paths = layout.host_paths(site)
    db = site.with_role("db")[0].hostname
    exporter = plans[db].container("postgres-exporter")
    assert exporter.env_file == paths.exporter_env("postgres") and exporter.user == layout.SERVICE_USER
    env = plans[db].file(paths.exporter_env("postgres"))
    assert env.secret and env.mode == 0o600
    assert site.secret("postgres", "POSTGRES_MONITOR_PASSWORD") in env.content
    assert f"@{site.server(db).private_ip}:5432/" in env.content
    redis_host = site.with_role("redis")[0].hostname
    assert {c.name for c in plans[redis_host].containers} == {"node-exporter", "redis-exporter", "sentinel-exporter"}
    for host, plan in plans.items():
        public = [f.content for f in plan.files if not f.secret]
        public += [" ".join(ContainerCli("docker").run(c, "0")) for c in plan.containers]
        assert not [v for v in secrets for text in public if v in text], host
    assert all(plan.container("node-exporter") for plan in plans.values())
    assert set(plans) == {s.hostname for s in site.servers}


def test_metrics_ports_open_to_the_monitor_servers_only(site: Site) -> None:
    ports = host_ports(site)
    db = site.with_role("db")[0].hostname
    wanted = {9100, 9187}
    found = {p.number: p.allow_from for m, p in ports[db] if m.name == MODULE.name}
    assert set(found) == wanted and all(allow == READERS for allow in found.values())
    monitor = layout.monitors(site)[0].hostname
    mine = {(p.number, p.protocol): p.allow_from for m, p in ports[monitor] if m.name == MODULE.name}
    assert mine[(layout.ALERTMANAGER_CLUSTER_PORT, "udp")] == ("monitor",)


def test_dashboards_are_grafana_json_with_valid_queries(site: Site, plans: Plans, tmp_path: Path) -> None:
    boards = dashboards.dashboards(site, site_modules(site))
    assert set(boards) == {"postgres", "redis", "rabbitmq", "minio", "mariadb"}
    records = []
    for name in boards:
        text = monitor_file(plans, site, f"{layout.host_paths(site).dashboards}/{name}.json")
        parsed = json.loads(text)
        assert parsed["uid"] == f"keybuzz-{name}" and parsed["panels"] and parsed["schemaVersion"] >= 12
        ids = [p["id"] for p in parsed["panels"]]
        assert len(set(ids)) == len(ids)
        for panel in parsed["panels"]:
            assert panel["type"] == "timeseries" and panel["datasource"] == "${datasource}"
            records.append({"record": f"check:{name}:{panel['id']}", "expr": panel["targets"][0]["expr"]})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    result = promtool("check", "rules", str(path))  # each query parsed by Prometheus' own parser
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_groups_by_host_and_lets_host_down_speak_for_its_targets(site: Site, plans: Plans,
                                                                            tmp_path: Path) -> None:
    text = monitor_file(plans, site, layout.host_paths(site).alertmanager_yml)
    _amtool_check(text, tmp_path)
    config = yaml.safe_load(text)
    assert config["route"]["group_by"] == ["alertname", "hostname"]
    assert config["inhibit_rules"] == [{"source_matchers": ['alertname="HostDown"'],
                                        "target_matchers": ['alertname!="HostDown"'], "equal": ["hostname"]}]
    monitors = layout.monitors(site)
    spec = plans[monitors[0].hostname].container("alertmanager")
    assert f"--cluster.peer={monitors[1].private_ip}:{layout.ALERTMANAGER_CLUSTER_PORT}" in spec.command


def _amtool_check(text: str, tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing: run scripts/setup-machine.sh (Debian package prometheus-alertmanager)")
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pages_go_to_the_operators_webhook_written_only_in_a_secret_file(site: Site, tmp_path: Path, kb) -> None:
    from keybuzz.lint import lint
    from keybuzz.registry import load_site

    def findings(loaded: Site) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for f in lint(loaded):
            found.setdefault(f.rule, []).append(f"{f.where}: {f.message}")
        return found

    assert "KB026" in findings(site) and "KB025" not in findings(site)  # the example site sends pages nowhere
    config = site.root / "keybuzz.yaml"
    data = yaml.safe_load(config.read_text())
    data.setdefault("monitoring", {})["notify"] = {"receiver": "webhook", "group_wait_s": 5}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    unwritten = findings(load_site(site.root))
    assert "KB026" not in unwritten
    [missing] = unwritten["KB025"]
    line = next(n for n, text in enumerate(config.read_text().splitlines(), start=1) if "receiver:" in text)
    assert missing.startswith(f"keybuzz.yaml:{line}: ") and "ALERTING_WEBHOOK_URL_SECRET" in missing

    url = "https://hooks.example.test/services/T0/B0/" + "x" * 24
    env = site.root / "credentials" / "alerting.env"
    env.write_text(f"ALERTING_WEBHOOK_URL_SECRET={url}\n")
    env.chmod(0o600)
    loaded = load_site(site.root)
    assert "KB025" not in findings(loaded) and "KB001" not in findings(loaded)
    plans = MODULE.render(loaded)
    file = plans[layout.monitors(loaded)[0].hostname].file(layout.host_paths(loaded).alertmanager_yml)
    assert file.secret and file.mode == 0o600 and file.owner == layout.SERVICE_USER
    _amtool_check(file.content, tmp_path)
    parsed = yaml.safe_load(file.content)
    assert parsed["receivers"] == [{"name": "on-call", "webhook_configs": [{"url": url, "send_resolved": True}]}]
    assert parsed["route"]["group_wait"] == "5s" and parsed["route"]["receiver"] == "on-call"
    for host, plan in plans.items():  # the URL nowhere else: not in a public file, not in an argv
        public = [f.content for f in plan.files if not f.secret]
        public += [" ".join(ContainerCli("docker").run(c, "0")) for c in plan.containers]
        assert not [text for text in public if url in text], host

    env.write_text("ALERTING_WEBHOOK_URL_SECRET=hooks.example.test/no-scheme-given\n")
    with pytest.raises(InputErrors, match=r"alerting.env:1: ALERTING_WEBHOOK_URL_SECRET: the value \(not shown\) "
                                          r"is not an http\(s\) URL"):
        load_site(site.root)


def _host_file(plans: Plans, host: str, container: str, flag: str) -> FileSpec:
    """The file of the plan a container's `--flag=path` reads, through the container's mounts."""
    spec = plans[host].container(container)
    inside = next(arg.split("=", 1)[1] for arg in spec.command if arg.startswith(f"--{flag}="))
    mount = next(m for m in spec.mounts if inside.startswith(m.target + "/"))
    return plans[host].file(mount.source + inside[len(mount.target):])


def test_prometheus_and_alertmanager_take_the_sites_login_from_secret_files(site: Site, plans: Plans,
                                                                           tmp_path: Path) -> None:
    user, password = site.secret("monitoring", "MONITORING_WEB_USER"), site.secret("monitoring",
                                                                                   "MONITORING_WEB_PASSWORD")
    host = layout.monitors(site)[0].hostname
    for container in ("prometheus", "alertmanager"):
        web = _host_file(plans, host, container, "web.config.file")
        assert web.secret and web.mode == 0o600 and web.owner == layout.SERVICE_USER == plans[host].container(
            container).user
        path = tmp_path / f"{container}-web.yml"
        path.write_text(web.text)
        checked = promtool("check", "web-config", str(path))  # the exporter toolkit's own parser
        assert checked.returncode == 0, checked.stdout + checked.stderr
        [(name, hashed)] = yaml.safe_load(web.text)["basic_auth_users"].items()
        assert name == user and hashed.startswith("$2b$10$")
        assert bcrypt.checkpw(password.encode(), hashed.encode())
        assert not bcrypt.checkpw(b"not-the-password", hashed.encode())
        assert web.path in plans[host].container(container).restart_on
    text = monitor_file(plans, site, layout.host_paths(site).prometheus_yml)
    assert "*id0" not in text  # each login written out, not a YAML alias of another
    config = yaml.safe_load(text)
    own = {j["job_name"]: j for j in config["scrape_configs"] if j["job_name"] in ("prometheus", "alertmanager")}
    logins = [own["prometheus"]["basic_auth"], own["alertmanager"]["basic_auth"],
              config["alerting"]["alertmanagers"][0]["basic_auth"]]
    assert logins == [{"username": user, "password_file": layout.C_PROMETHEUS_WEB_PASSWORD}] * 3
    assert not [j for j in config["scrape_configs"] if j["job_name"] not in own and "basic_auth" in j]
    password_file = plans[host].file(f"{layout.host_paths(site).conf}/prometheus/web-password")
    assert password_file.text == password and password_file.secret and password_file.owner == layout.SERVICE_USER
    hashes = [_host_file(plans, host, c, "web.config.file").text for c in ("prometheus", "alertmanager")]
    for plan in plans.values():  # neither the password nor its hash outside secret files, nor in an argv
        public = [f.content for f in plan.files if not f.secret]
        public += [" ".join(ContainerCli("docker").run(c, "0")) for c in plan.containers]
        assert not [t for t in public for value in (password, hashes[0].splitlines()[-1]) if value in t], plan.hostname


def test_a_rerender_is_byte_identical_and_a_new_password_a_new_hash(site: Site, plans: Plans) -> None:
    from keybuzz.registry import load_site

    host = layout.monitors(site)[0].hostname
    again = MODULE.render(load_site(site.root))  # a new process would load the site again: same files
    assert {f.path: f.content for f in again[host].files} == {f.path: f.content for f in plans[host].files}
    env = site.root / "credentials" / "monitoring.env"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    old = _host_file(plans, host, "prometheus", "web.config.file").text
    env.write_text(env.read_text().replace(site.secret("monitoring", "MONITORING_WEB_PASSWORD"), "N" * 32))
    changed = MODULE.render(load_site(site.root))
    new = _host_file(changed, host, "prometheus", "web.config.file").text
    old_hash, new_hash = (yaml.safe_load(t)["basic_auth_users"]["keybuzz"] for t in (old, new))
    assert old_hash[:29] != new_hash[:29]  # the salt follows the password
    assert bcrypt.checkpw(b"N" * 32, new_hash.encode())


def test_every_listener_of_the_module_binds_its_servers_private_ip(site: Site, plans: Plans) -> None:
    own = {"prometheus", "alertmanager", "node-exporter"}
    for host, plan in plans.items():
        ip = str(site.server(host).private_ip)
        binds = [arg.split("=", 1)[1] for c in plan.containers if c.name in own for arg in c.command
                 if arg.startswith(("--web.listen-address=", "--cluster.listen-address="))]
        assert binds and all(b.rsplit(":", 1)[0] == ip for b in binds if b), (host, binds)
    monitor = layout.monitors(site)[0]
    command = plans[monitor.hostname].container("alertmanager").command
    assert {f"--web.listen-address={monitor.private_ip}:9093",
            f"--cluster.listen-address={monitor.private_ip}:9094"} <= set(command)


def test_a_login_that_bcrypt_or_basic_auth_cannot_take_is_refused_at_its_line(site: Site) -> None:
    from keybuzz.errors import InputErrors
    from keybuzz.registry import load_site

    env = site.root / "credentials" / "monitoring.env"
    original = env.read_text()
    for key, value, why in (("MONITORING_WEB_PASSWORD", "a" * 73, "8-72 allowed"),  # bcrypt reads 72 bytes
                            ("MONITORING_WEB_USER", "ops:x", "not a service user name")):  # ':' ends the user
        line = next(n for n, text in enumerate(original.splitlines(), start=1) if text.startswith(f"{key}="))
        env.write_text(original.replace(f"{key}={site.secret('monitoring', key)}", f"{key}={value}"))
        with pytest.raises(InputErrors) as refused:
            load_site(site.root)
        [error] = [str(e) for e in refused.value.errors]
        assert error.startswith(f"{env}:{line}: {key}") and why in error, error
        assert key == "MONITORING_WEB_USER" or value not in error  # a password is never shown
