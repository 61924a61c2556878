"""The MariaDB Galera module's rendered files parsed back (option files, shell), its boot script's
decisions run for real in a temporary data folder, and its pure logic (positions, accounts, health)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from keybuzz.errors import InputErrors, OperationFailed
from keybuzz.lint import lint
from keybuzz.modules.mariadb import bootscript, conf, galera_health, layout, sql, users
from keybuzz.modules.mariadb.deploy import Position, most_advanced
from keybuzz.modules.mariadb.render import render
from keybuzz.registry import load_site, module_by_name
from keybuzz.render import Plans
from keybuzz.site import Site
from keybuzz.site.writer import ServerRow

NODES = ("maria-01", "maria-02", "maria-03")
IPS = ("10.0.0.170", "10.0.0.171", "10.0.0.172")


@pytest.fixture
def plans(site: Site) -> Plans:
    return render(site)


def text(plans: Plans, host: str, path: str) -> str:
    content = plans[host].file(path).content
    assert isinstance(content, str)
    return content


def test_each_node_gets_the_server_and_its_health_agent(plans: Plans) -> None:
    assert set(plans) == set(NODES)
    for host in NODES:
        assert [c.name for c in plans[host].containers] == ["mariadb", "galera-health"]


def test_module_needs_three_nodes(seed_site: Path, kb) -> None:
    module = module_by_name("mariadb")
    assert module.implemented and module.quorum and module.quorum.minimum == 3
    kb.write_servers(seed_site, [*kb.small_rows(), *[ServerRow(f"maria-0{i}", f"10.0.0.{170 + i}", ("maria",))
                                                     for i in range(2)]])
    with pytest.raises(InputErrors, match="role maria"):
        load_site(seed_site)


def test_my_cnf_is_galera_with_durable_commits_and_no_secret(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    creds = site.credentials["mariadb"]
    for host, ip in zip(NODES, IPS, strict=True):
        rendered = text(plans, host, paths.my_cnf)
        options = conf.parse_option_file(rendered)["mysqld"]
        # the SST scripts' socat listens on every interface unless bound (the donor's leaves from it too)
        assert conf.parse_option_file(rendered)["sst"] == {"sockopt": f"bind={ip}"}
        assert options["bind_address"] == ip and options["port"] == "3306"
        assert options["wsrep_on"] == "ON" and options["wsrep_provider"] == conf.PROVIDER
        assert options["wsrep_cluster_address"] == "gcomm://" + ",".join(IPS)
        assert options["wsrep_node_address"] == ip and options["wsrep_node_name"] == host
        assert options["wsrep_sst_method"] == "mariabackup"
        assert options["wsrep_sst_receive_address"] == f"{ip}:4444"
        assert options["innodb_flush_log_at_trx_commit"] == "1"
        assert options["innodb_autoinc_lock_mode"] == "2" and options["binlog_format"] == "ROW"
        assert options["socket"] == layout.C_SOCKET and options["datadir"] == layout.C_DATA_DIR
        provider = dict(item.split("=", 1) for item in options["wsrep_provider_options"].strip('"').split(";"))
        assert provider["gmcast.listen_addr"] == f"tcp://{ip}:4567"  # the private address only
        assert provider["ist.recv_addr"] == f"{ip}:4568"  # IST binds it (ist.recv_bind defaults to it)
        assert provider["pc.recovery"] == "TRUE"
        assert provider["evs.suspect_timeout"] == "PT5S" and provider["gcache.size"] == "1G"
        assert conf.includes(rendered) == [f"{layout.C_CONF_DIR}/secrets.cnf"]
        assert not any(v in rendered for v in creds.values() if len(v) > 12)


def test_the_exporter_listens_on_its_servers_address_only(site: Site) -> None:
    plans = module_by_name("monitoring").render(site)  # the monitoring module runs the exporter the module declares
    for host, ip in zip(NODES, IPS, strict=True):
        assert plans[host].container("mariadb-exporter").command[0] == f"--web.listen-address={ip}:9104"


def test_sst_credentials_are_a_secret_file_of_the_mysql_user(plans: Plans, site: Site) -> None:
    spec = plans["maria-01"].file(layout.host_paths(site).secrets_cnf)
    assert spec.secret and spec.mode == 0o600 and spec.owner == layout.image_user(site)
    creds = site.credentials["mariadb"]
    assert conf.parse_option_file(text(plans, "maria-01", spec.path))["mysqld"]["wsrep_sst_auth"] == (
        f"{creds['MARIADB_SST_USER']}:{creds['MARIADB_SST_PASSWORD']}")
    agent_env = plans["maria-01"].file(layout.host_paths(site).health_env)
    assert agent_env.secret and agent_env.mode == 0o600
    server, agent = plans["maria-01"].containers
    assert server.user == "mysql" and server.env_file is None
    assert agent.env_file == agent_env.path and agent.user != "root"


def test_settings_reach_my_cnf(seed_site: Path) -> None:
    config = seed_site / "keybuzz.yaml"
    data = yaml.safe_load(config.read_text())
    data["mariadb"] = {"innodb_buffer_pool_size": "2G", "max_connections": 800}
    data.setdefault("tuning", {})["galera"] = {"suspect_timeout_s": 3, "gcache_size": "2G"}
    config.write_text(yaml.safe_dump(data))
    site = load_site(seed_site)
    options = conf.parse_option_file(conf.my_cnf(site, layout.nodes(site)[0]))["mysqld"]
    assert options["innodb_buffer_pool_size"] == "2G" and options["max_connections"] == "800"
    assert "evs.suspect_timeout=PT3S" in options["wsrep_provider_options"]
    assert "gcache.size=2G" in options["wsrep_provider_options"]


def test_lint_refuses_bitnami_and_warns_on_relaxed_commits(seed_site: Path) -> None:
    versions = seed_site / "versions.yaml"
    data = yaml.safe_load(versions.read_text())
    data["images"]["mariadb"] = "bitnami/mariadb-galera:10.11.6"
    versions.write_text(yaml.safe_dump(data))
    config = seed_site / "keybuzz.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["mariadb"] = {"innodb_flush_log_at_trx_commit": 2}
    config.write_text(yaml.safe_dump(settings))
    findings = {f.rule: f for f in lint(load_site(seed_site))}
    assert findings["KB014"].severity == "error" and "mariadb:10.11" in findings["KB014"].hint
    assert findings["KB015"].severity == "warning" and "Jepsen" in findings["KB015"].message


def run_script(tmp_path: Path, command: str, grastate: str | None = None, *, mark: bool = False,
               system_tables: bool = True) -> tuple[subprocess.CompletedProcess[str], str]:
    """The rendered boot script with its data folder in tmp_path and recording stand-ins for the
    server binaries on PATH (the real server runs in the lab tests): what it decides, for real."""
    data, bin_dir = tmp_path / "data", tmp_path / "bin"
    data.mkdir()
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for name in ("mariadbd", "mariadb-install-db"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n'
                        'for a in "$@"; do case "$a" in --log-error=*) '
                        'echo "WSREP: Recovered position: 6f0e-uuid:42" > "${a#--log-error=}";; esac; done\n')
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    if grastate is not None:
        (data / "grastate.dat").write_text(grastate)
    if system_tables:
        (data / "mysql").mkdir()
    if mark:
        (data / bootscript.MARK).write_text("")
    script = tmp_path / "keybuzz-galera.sh"
    script.write_text(bootscript.script().replace(f"DATA={layout.C_DATA_DIR}", f"DATA={data}")
                      .replace("/tmp/wsrep-recover.log", str(tmp_path / "recover.log")))
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    result = subprocess.run(["sh", str(script), command], capture_output=True, text=True, env=env, timeout=30)
    return result, log.read_text() if log.exists() else ""


GRASTATE_CRASHED = "# GALERA saved state\nversion: 2.1\nuuid:    6f0e-uuid\nseqno:   -1\nsafe_to_bootstrap: 0\n"
GRASTATE_CLEAN = "# GALERA saved state\nversion: 2.1\nuuid:    6f0e-uuid\nseqno:   1234\nsafe_to_bootstrap: 0\n"


def test_boot_script_is_valid_shell(plans: Plans, site: Site) -> None:
    subprocess.run(["sh", "-n"], input=text(plans, "maria-01", layout.host_paths(site).script), text=True, check=True)


def test_boot_script_never_bootstraps_by_itself(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "start", GRASTATE_CRASHED)
    assert result.returncode == 0, result.stderr
    assert calls.strip() == f"mariadbd --defaults-file={layout.C_MY_CNF}"
    assert "safe_to_bootstrap: 0" in (tmp_path / "data" / "grastate.dat").read_text()


def test_boot_script_bootstraps_once_on_deploys_mark(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "start", GRASTATE_CRASHED, mark=True)
    assert result.returncode == 0, result.stderr
    assert calls.strip() == f"mariadbd --defaults-file={layout.C_MY_CNF} --wsrep-new-cluster"
    assert "safe_to_bootstrap: 1" in (tmp_path / "data" / "grastate.dat").read_text()
    assert not (tmp_path / "data" / bootscript.MARK).exists()  # a restart later joins, never bootstraps again


def test_boot_script_initialises_a_new_cluster_on_the_mark(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "start", None, mark=True, system_tables=False)
    assert result.returncode == 0, result.stderr
    assert calls.splitlines()[0].startswith("mariadb-install-db --defaults-file=")
    assert "--auth-root-authentication-method=socket" in calls.splitlines()[0]
    assert calls.splitlines()[1].endswith("--wsrep-new-cluster")


def test_position_from_a_clean_stop_and_after_a_crash(tmp_path: Path) -> None:
    cases = {name: tmp_path / name for name in ("clean", "crash", "empty")}
    for folder in cases.values():
        folder.mkdir()
    clean, calls = run_script(cases["clean"], "position", GRASTATE_CLEAN)
    assert bootscript.parse_position(clean.stdout) == ("6f0e-uuid", 1234)
    assert calls == ""  # grastate.dat is enough: the server is not started
    crashed, calls = run_script(cases["crash"], "position", GRASTATE_CRASHED)
    assert bootscript.parse_position(crashed.stdout) == ("6f0e-uuid", 42)
    assert "--wsrep-recover" in calls
    empty, _ = run_script(cases["empty"], "position", None, system_tables=False)
    assert bootscript.parse_position(empty.stdout) is None


def test_parse_position_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="no position"):
        bootscript.parse_position("keybuzz-galera: wsrep-recover found no position\n")
    with pytest.raises(ValueError, match="unreadable"):
        bootscript.parse_position("position garbage recovered\n")


def test_cold_start_bootstraps_the_most_advanced_node_only() -> None:
    positions = [Position("maria-01", "u", 10), Position("maria-02", "u", 12), Position("maria-03", "u", 12)]
    assert most_advanced(positions).hostname == "maria-02"  # highest; ties: the first listed
    with pytest.raises(OperationFailed, match="different cluster histories"):
        most_advanced([Position("maria-01", "u", 10), Position("maria-02", "v", 99)])
    with pytest.raises(OperationFailed, match="nothing to start from"):
        most_advanced([])


def test_accounts_are_local_or_from_the_private_network(site: Site) -> None:
    found = {a.user: a for a in users.accounts(site)}
    creds = site.credentials["mariadb"]
    assert found["root"].host == "localhost" and found["root"].socket_too
    assert found[creds["MARIADB_SST_USER"]].host == "localhost"
    assert set(found[creds["MARIADB_SST_USER"]].privileges) == {"RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR"}
    assert found[creds["MARIADB_APP_USER"]].host == "10.0.0.0/255.255.0.0"
    assert found[creds["MARIADB_APP_USER"]].target == "`erpnext`.*"
    assert found[creds["MARIADB_MONITOR_USER"]].privileges == ("USAGE",)


def test_granted_reads_show_grants() -> None:
    lines = ["GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO `mariabackup`@`localhost` "
             "IDENTIFIED BY PASSWORD '*AB'",
             "GRANT ALL PRIVILEGES ON `erpnext`.* TO `erpnext`@`10.0.0.0/255.255.0.0`"]
    assert users.granted(lines, "*.*") == {"RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR"}
    assert users.granted(lines, "`erpnext`.*") == {"ALL PRIVILEGES"}
    assert users.granted(lines, "`other`.*") == set()


def test_native_password_hash_matches_mariadbs_password_function() -> None:
    assert sql.native_password_hash("test") == "*94BDCEBE19083CE2A1F959FD02F964C7AF4CFC29"
    assert sql.literal("it's a \\ test") == "'it''s a \\\\ test'" and sql.ident("we`ird") == "`we``ird`"


SYNCED = {"wsrep_local_state": "4", "wsrep_local_state_comment": "Synced", "wsrep_ready": "ON",
          "wsrep_cluster_status": "Primary", "wsrep_cluster_size": "3", "wsrep_cluster_state_uuid": "u",
          "wsrep_last_committed": "77", "wsrep_connected": "ON"}


def test_health_verdict_is_200_only_for_a_synced_ready_primary_member() -> None:
    code, body = galera_health.verdict(SYNCED, "0")
    assert code == 200 and body["problems"] == [] and body["cluster_size"] == 3 and body["last_committed"] == 77
    donor = {**SYNCED, "wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"}
    assert galera_health.verdict(donor, "0") == (503, galera_health.verdict(donor, "0")[1])
    assert "state Donor/Desynced, not Synced" in galera_health.verdict(donor, "0")[1]["problems"]
    assert galera_health.verdict(SYNCED, "1")[1]["problems"] == ["desynced"]
    cut_off = {**SYNCED, "wsrep_cluster_status": "non-Primary", "wsrep_ready": "OFF"}
    code, body = galera_health.verdict(cut_off, "0")
    assert code == 503 and body["problems"] == ["cluster status non-Primary, not Primary", "wsrep_ready OFF"]


def test_ports_are_reached_only_by_the_roles_that_need_them(site: Site) -> None:
    ports = {p.number: p for p in module_by_name("mariadb").ports(site)}
    assert set(ports) == {3306, 4567, 4568, 4444, 9200}
    assert all(ports[n].allow_from == ("maria",) for n in (4567, 4568, 4444))
    assert "proxysql" in ports[3306].allow_from and "app" not in ports[3306].allow_from


def test_the_accounts_are_read_in_sections_of_one_batch() -> None:
    from keybuzz.modules.mariadb.users import split_sections

    rows = [["kb databases"], ["mysql"], ["erpnext"], ["kb create 0"], ["CREATE USER `root`@`localhost`"],
            ["kb grants 0"], ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"], ["GRANT PROXY ON ''@'%'"]]
    sections = split_sections(rows, "kb")
    assert sections == {"databases": ["mysql", "erpnext"], "create 0": ["CREATE USER `root`@`localhost`"],
                        "grants 0": ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`", "GRANT PROXY ON ''@'%'"]}
