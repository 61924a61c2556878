"""The ProxySQL module: proxysql.cnf parsed back with a libconfig parser, the lab stand-in's
haproxy.cfg parsed, the admin interface's answers parsed, the engine choice per site."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keybuzz.containers import ContainerCli
from keybuzz.haproxy import parse_config
from keybuzz.modules.mariadb.sql import native_password_hash
from keybuzz.modules.proxysql import checks, conf, layout, standin
from keybuzz.modules.proxysql.render import render
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

PROXIES = ("proxysql-01", "proxysql-02")
MARIA_IPS = ["10.0.0.170", "10.0.0.171", "10.0.0.172"]


@pytest.fixture
def standin_site(seed_site: Path) -> Site:
    config = seed_site / "keybuzz.yaml"
    data = yaml.safe_load(config.read_text())
    data["proxysql"] = {"engine": "haproxy"}
    config.write_text(yaml.safe_dump(data))
    return load_site(seed_site)


def test_production_renders_proxysql_with_its_config_as_a_secret(site: Site) -> None:
    plans = render(site)
    assert set(plans) == set(PROXIES)
    paths = layout.host_paths(site)
    for host in PROXIES:
        spec = plans[host].file(paths.proxysql_cnf)
        assert spec.secret and spec.mode == 0o600
        container = plans[host].containers[0]
        assert container.name == "proxysql" and "--initial" in container.command  # the file is the whole truth
        argv = ContainerCli("docker").run(container, "h")
        assert not any(v in " ".join(argv) for v in site.credentials["proxysql"].values() if len(v) > 12)


def test_proxysql_cnf_one_writer_admin_on_localhost_hashed_app_password(site: Site) -> None:
    text = render(site)["proxysql-01"].file(layout.host_paths(site).proxysql_cnf).content
    assert isinstance(text, str)
    doc = conf.parse(text)
    maria, admin = site.credentials["mariadb"], site.credentials["proxysql"]
    assert doc["admin_variables"]["mysql_ifaces"] == "127.0.0.1:6032"  # the seed bound 0.0.0.0:6032
    wanted_admin = f"{admin['PROXYSQL_ADMIN_USER']}:{admin['PROXYSQL_ADMIN_PASSWORD']}"
    assert doc["admin_variables"]["admin_credentials"] == wanted_admin
    assert doc["mysql_variables"]["interfaces"] == "10.0.0.173:3306"  # proxysql-01's own address (the seed: 0.0.0.0)
    other = conf.parse(str(render(site)["proxysql-02"].file(layout.host_paths(site).proxysql_cnf).content))
    assert other["mysql_variables"]["interfaces"] == "10.0.0.174:3306"
    assert doc["mysql_variables"]["monitor_username"] == maria["MARIADB_MONITOR_USER"]
    assert [s["address"] for s in doc["mysql_servers"]] == MARIA_IPS
    assert {s["hostgroup"] for s in doc["mysql_servers"]} == {layout.WRITER_HG}
    (galera,) = doc["mysql_galera_hostgroups"]
    assert (galera["writer_hostgroup"], galera["backup_writer_hostgroup"], galera["reader_hostgroup"],
            galera["offline_hostgroup"]) == (10, 20, 30, 9999)
    assert galera["max_writers"] == 1 and galera["writer_is_also_reader"] == 0 and galera["active"] == 1
    (user,) = doc["mysql_users"]
    assert user["username"] == maria["MARIADB_APP_USER"]
    assert user["password"] == native_password_hash(maria["MARIADB_APP_PASSWORD"])
    assert maria["MARIADB_APP_PASSWORD"] not in text
    assert [r["destination_hostgroup"] for r in doc["mysql_query_rules"]] == [10, 10]  # every query to the writer


def test_admin_client_file_is_a_secret_read_inside_the_container(site: Site) -> None:
    plans = render(site)
    paths = layout.host_paths(site)
    spec = plans["proxysql-01"].file(paths.admin_cnf)
    assert spec.secret and spec.mode == 0o600
    assert "host = 127.0.0.1\nport = 6032\n" in str(spec.content)
    mounts = {m.target: m for m in plans["proxysql-01"].containers[0].mounts}
    assert mounts["/root/.my.cnf"].source == paths.admin_cnf and mounts["/root/.my.cnf"].read_only


def test_the_lab_stand_in_is_haproxy_with_one_writer_and_backups(standin_site: Site) -> None:
    plans = render(standin_site)
    paths = layout.host_paths(standin_site)
    for host, ip in zip(PROXIES, ("10.0.0.173", "10.0.0.174"), strict=True):
        assert [c.name for c in plans[host].containers] == [layout.STANDIN_CONTAINER]
        text = str(plans[host].file(paths.haproxy_cfg).content)
        assert text.startswith("# Lab stand-in for ProxySQL")
        sections = parse_config(text)
        assert f"bind {ip}:3306" in sections["frontend mariadb"]
        assert f"bind {ip}:{layout.stats_port(standin_site)}" in sections["listen stats"]
        backend = sections[f"backend {standin.BACKEND}"]
        assert "option httpchk GET /" in backend and "http-check expect status 200" in backend
        servers = [line.split() for line in backend if line.startswith("server ")]
        assert [s[2] for s in servers] == [f"{ip}:3306" for ip in MARIA_IPS]
        assert ["backup" in s for s in servers] == [False, True, True]  # one writer, the others in order
        check = next(line for line in backend if line.startswith("default-server"))
        assert "port 9200" in check and "on-marked-up shutdown-backup-sessions" in check
        assert "on-marked-down shutdown-sessions" in check


def test_lab_site_runs_the_stand_in_and_says_so() -> None:
    module = module_by_name("proxysql")
    assert module.runs_in_lab and module.settings[0].lab == {"engine": "haproxy"}
    image = next(spec for spec in module.images if spec.key == "proxysql")
    assert image.lab is None and "stand-in" in image.note


RUNTIME = "10\t10.0.0.170\tONLINE\n20\t10.0.0.171\tONLINE\n20\t10.0.0.172\tONLINE\n30\t10.0.0.171\tONLINE\n"


def test_runtime_servers_of_the_admin_interface() -> None:
    rows = checks.parse_runtime_servers("hostgroup_id\thostname\tstatus\n" + RUNTIME)
    assert rows[0] == (10, "10.0.0.170", "ONLINE") and len(rows) == 4
    assert checks.runtime_problems(rows, MARIA_IPS) == []
    two_writers = checks.parse_runtime_servers(RUNTIME.replace("20\t10.0.0.171", "10\t10.0.0.171"))
    assert checks.runtime_problems(two_writers, MARIA_IPS) == ["2 ONLINE writers: 10.0.0.170, 10.0.0.171"]
    shunned = checks.parse_runtime_servers(RUNTIME.replace("20\t10.0.0.172\tONLINE", "9999\t10.0.0.172\tSHUNNED"))
    assert checks.runtime_problems(shunned, MARIA_IPS) == ["not ONLINE as writer or backup writer: 10.0.0.172"]


def test_admin_query_runs_inside_the_container_with_no_password_in_argv() -> None:
    argv = ContainerCli("docker").exec(layout.PROXYSQL_CONTAINER, ["mysql", "--batch", "--skip-column-names"],
                                       stdin=True)
    assert argv == ["docker", "exec", "-i", "proxysql", "mysql", "--batch", "--skip-column-names"]
    assert "runtime_mysql_servers" in checks.RUNTIME_SQL


def test_ports_and_requirements(site: Site, standin_site: Site) -> None:
    module = module_by_name("proxysql")
    assert [(p.number, p.role) for p in module.ports(site)] == [(3306, "proxysql")]
    assert (layout.stats_port(standin_site), "proxysql") in [(p.number, p.role) for p in module.ports(standin_site)]
    assert module.requirements(site) == []  # lb-mariadb lists 3306
