"""The PostgreSQL module's rendered files, parsed (YAML, HAProxy sections, INI) and checked."""

from __future__ import annotations

import configparser
import ipaddress
from pathlib import Path

import pytest
import yaml

from keybuzz.containers import ContainerCli
from keybuzz.errors import InputErrors
from keybuzz.haproxy import parse_config
from keybuzz.modules.postgres import layout
from keybuzz.modules.postgres.render import render
from keybuzz.registry import example_config, load_site, module_by_name
from keybuzz.render import ImageUser, Plans
from keybuzz.site import Site

DB = ("db-master-01", "db-slave-01", "db-slave-02")
DB_IPS = ("10.0.0.120", "10.0.0.121", "10.0.0.122")



@pytest.fixture
def plans(site: Site) -> Plans:
    return render(site)


def patroni_doc(plans: Plans, host: str, site: Site) -> dict:
    return yaml.safe_load(plans[host].file(layout.host_paths(site).patroni_yml).content)


def test_hosts_get_what_their_role_needs(plans: Plans) -> None:
    assert set(plans) == {*DB, "haproxy-01", "haproxy-02"}
    for host in DB:
        assert [c.name for c in plans[host].containers] == ["patroni"]
    for host in ("haproxy-01", "haproxy-02"):
        assert sorted(c.name for c in plans[host].containers) == ["haproxy-postgres", "pgbouncer"]


def test_module_is_registered(site: Site) -> None:
    module = module_by_name("postgres")
    assert module.implemented and module.render(site).keys() == render(site).keys()
    assert module.requirements(site) == []


def test_timings_are_valid_for_patroni_4(plans: Plans, site: Site) -> None:
    dcs = patroni_doc(plans, "db-master-01", site)["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (20, 2, 4)
    assert dcs["ttl"] >= 20 and dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]


def test_timings_come_from_keybuzz_yaml(seed_site: Path, kb: type) -> None:
    site = kb.retune(seed_site, "patroni", ttl=30, loop_wait=4, retry_timeout=8, maximum_lag_on_failover=2097152)
    plans = render(site)
    dcs = patroni_doc(plans, "db-master-01", site)["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["maximum_lag_on_failover"]) == (30, 4, 8, 2097152)
    read = parse_config(plans["haproxy-01"].file(layout.host_paths(site).haproxy_cfg).content)["listen postgres_read"]
    assert "option httpchk GET /replica?lag=2097152" in read


def test_only_the_first_db_server_can_bootstrap(plans: Plans, site: Site) -> None:
    assert "bootstrap" in patroni_doc(plans, "db-master-01", site)
    assert "bootstrap" not in patroni_doc(plans, "db-slave-01", site)
    assert "bootstrap" not in patroni_doc(plans, "db-slave-02", site)


def test_postgresql_settings_corrected(plans: Plans, site: Site) -> None:
    dcs = patroni_doc(plans, "db-master-01", site)["bootstrap"]["dcs"]
    pg = dcs["postgresql"]
    params = pg["parameters"]
    assert pg["use_pg_rewind"] is True and pg["use_slots"] is True
    assert params["wal_log_hints"] == "on"
    assert "vector" not in [lib.strip() for lib in params["shared_preload_libraries"].split(",")]
    assert params["password_encryption"] == "scram-sha-256"
    assert params["shared_buffers"] == site.config.tuning.postgres.shared_buffers == "256MB"
    assert params["max_connections"] == 200


def test_production_preloads_pg_stat_statements_and_the_lab_site_says_otherwise(seed_site: Path, kb: type) -> None:
    site = load_site(seed_site)
    params = patroni_doc(render(site), "db-master-01", site)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert params["shared_preload_libraries"] == "pg_stat_statements" and params["pg_stat_statements.track"] == "all"
    lab_values = example_config(lab=True)["tuning"]["postgres"]  # what `keybuzz lab up` writes
    assert lab_values == {"preload_libraries": []} and "postgres" not in example_config()["tuning"]
    lab = kb.retune(seed_site, "postgres", **lab_values)
    params = patroni_doc(render(lab), "db-master-01", lab)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert params["shared_preload_libraries"] == ""
    assert "pg_stat_statements.track" not in params  # a setting of a library that is not loaded


def test_preload_libraries_refuses_what_is_not_a_library_name(seed_site: Path, kb: type) -> None:
    with pytest.raises(InputErrors, match="preload_libraries"):
        kb.retune(seed_site, "postgres", preload_libraries=["pg_stat_statements,auto_explain"])


def test_memory_comes_from_settings(seed_site: Path) -> None:
    config_path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["tuning"]["postgres"] = {"shared_buffers": "2GB", "effective_cache_size": "6GB"}
    config_path.write_text(yaml.safe_dump(config))
    site = load_site(seed_site)
    params = patroni_doc(render(site), "db-master-01", site)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert (params["shared_buffers"], params["effective_cache_size"]) == ("2GB", "6GB")


def hba_fields(line: str) -> list[str]:
    """pg_hba.conf's tokenizer: whitespace-separated fields, a double-quoted field is a literal name
    (shown here with its quotes kept, so a quoted `all` never reads as the keyword)."""
    fields, current, quoted, inside = [], "", False, False
    for char in line + " ":
        if char == '"':
            inside, quoted = not inside, True
        elif char.isspace() and not inside:
            if current or quoted:
                fields.append(f'"{current}"' if quoted else current)
            current, quoted = "", False
        else:
            current += char
    assert not inside, f"unterminated quote in {line!r}"
    return fields


def test_pg_hba_scram_private_network_and_needed_roles(plans: Plans, site: Site) -> None:
    hba = patroni_doc(plans, "db-slave-02", site)["postgresql"]["pg_hba"]
    rows = [hba_fields(line) for line in hba]
    for row in rows:
        if row[0] == "host":
            assert len(row) == 5 and row[-1] == "scram-sha-256", row
            network = ipaddress.ip_network(row[3], strict=False)
            assert network == ipaddress.ip_network("127.0.0.1/32") or network.subnet_of(site.config.network.cidr)
            # A database is a name (never `all`), but for the superuser from the server itself.
            assert row[1] == "replication" or row[1].startswith('"') or row[2:4] == ['"postgres"', "127.0.0.1/32"], row
        else:
            assert row == ["local", "all", '"postgres"', "peer"]
        assert "md5" not in row and "trust" not in row and row[2].startswith('"'), row  # a user is a name
    assert ["host", "replication", '"replicator"', "127.0.0.1/32", "scram-sha-256"] in rows
    for ip in DB_IPS:
        assert ["host", "replication", '"replicator"', f"{ip}/32", "scram-sha-256"] in rows
        assert ["host", '"postgres"', '"rewind_user"', f"{ip}/32", "scram-sha-256"] in rows
    assert ["host", '"keybuzz"', '"keybuzz"', "10.0.0.0/16", "scram-sha-256"] in rows


@pytest.mark.parametrize("name", ["all", "replication", "samerole"])
def test_a_pg_hba_keyword_is_refused_as_a_database_or_role(seed_site: Path, name: str) -> None:
    env = seed_site / "credentials" / "postgres.env"
    env.write_text(env.read_text().replace("POSTGRES_APP_DATABASE=keybuzz", f"POSTGRES_APP_DATABASE={name}"))
    with pytest.raises(InputErrors) as caught:
        load_site(seed_site)
    line = next(n for n, text in enumerate(env.read_text().split("\n"), 1) if text.startswith("POSTGRES_APP_DATABASE"))
    assert f"postgres.env:{line}: POSTGRES_APP_DATABASE: '{name}' is not a PostgreSQL role or database name" \
        in str(caught.value)


def test_raft_by_default(plans: Plans, site: Site) -> None:
    doc = patroni_doc(plans, "db-slave-01", site)
    assert doc["raft"]["self_addr"] == doc["raft"]["bind_addr"] == "10.0.0.121:5000"  # pysyncobj's default: 0.0.0.0
    assert sorted(doc["raft"]["partner_addrs"]) == ["10.0.0.120:5000", "10.0.0.122:5000"]
    assert "etcd3" not in doc
    assert doc["restapi"]["listen"] == doc["restapi"]["connect_address"] == "10.0.0.121:8008"
    assert doc["postgresql"]["listen"] == "10.0.0.121,127.0.0.1:5432"
    env = plans["db-slave-01"].file(layout.host_paths(site).patroni_env).content
    assert "PATRONI_RAFT_PASSWORD=" in env


def test_etcd_variant(seed_site: Path, kb: type) -> None:
    site = kb.retune(seed_site, "patroni", dcs="etcd")
    plans = render(site)
    doc = patroni_doc(plans, "db-master-01", site)
    assert "raft" not in doc
    assert doc["etcd3"]["hosts"] == [f"{ip}:2379" for ip in DB_IPS]
    for host, ip in zip(DB, DB_IPS, strict=True):
        etcd = plans[host].container(layout.ETCD_CONTAINER)
        args = dict(zip(etcd.command[::2], etcd.command[1::2], strict=True))
        assert args["--name"] == host
        assert args["--listen-client-urls"] == f"http://{ip}:2379,http://127.0.0.1:2379"
        assert args["--initial-cluster"].count("=http://") == 3
        assert etcd.image == site.image("etcd")
    assert "PATRONI_RAFT_PASSWORD" not in plans["db-master-01"].file(layout.host_paths(site).patroni_env).content


def test_etcd_falls_back_to_the_patroni_image_in_the_lab(seed_site: Path, kb: type) -> None:
    versions_path = seed_site / "versions.yaml"
    versions = yaml.safe_load(versions_path.read_text())
    del versions["images"]["etcd"]
    versions_path.write_text(yaml.safe_dump(versions))
    site = kb.retune(seed_site, "patroni", dcs="etcd")
    assert render(site)["db-master-01"].container(layout.ETCD_CONTAINER).image == site.image("patroni")


def test_patroni_container(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    spec = plans["db-master-01"].container("patroni")
    assert spec.network_host and spec.user == "postgres" and spec.env_file == paths.patroni_env
    mounts = {m.source: m for m in spec.mounts}
    assert mounts[paths.config].read_only
    assert not mounts[paths.data].read_only and not mounts[paths.wal].read_only
    assert paths.data != paths.wal and paths.data.startswith(site.data_dir("postgres"))
    assert paths.wal.startswith(site.data_dir("postgres"))
    assert spec.image == site.image("patroni")
    secret = plans["db-master-01"].file(paths.patroni_env)
    assert secret.secret and secret.mode == 0o600
    dirs = {d.path: d for d in plans["db-master-01"].directories}
    assert dirs[paths.data].owner == dirs[paths.wal].owner == ImageUser(site.image("patroni"), "postgres")
    assert dirs[paths.data].mode == 0o700 and dirs[paths.data].data
    assert not dirs[paths.raft].data  # DCS state goes with cleanup


def test_waldir_on_its_own_path(plans: Plans, site: Site) -> None:
    doc = patroni_doc(plans, "db-master-01", site)
    assert {"waldir": layout.C_WALDIR} in doc["bootstrap"]["initdb"]
    assert {"waldir": layout.C_WALDIR} in doc["postgresql"]["basebackup"]
    assert layout.C_WALDIR.startswith(layout.C_WAL_MOUNT + "/")
    assert layout.C_PGDATA.startswith(layout.C_DATA_MOUNT + "/")


def test_no_secret_in_non_secret_files_or_argv(plans: Plans, site: Site, kb) -> None:
    secrets = kb.secret_values(site.root)
    for plan in plans.values():
        texts = [f.content for f in plan.files if not f.secret]
        texts += [" ".join(ContainerCli("docker").run(c, "0")) for c in plan.containers]
        for text in texts:
            for value in secrets:
                assert value not in text
    env = plans["db-master-01"].file(layout.host_paths(site).patroni_env).content
    creds = site.credentials["postgres"]
    for key in ("POSTGRES_SUPERUSER_PASSWORD", "POSTGRES_REPLICATION_PASSWORD", "POSTGRES_REWIND_PASSWORD",
                "PATRONI_RESTAPI_PASSWORD"):
        assert creds[key] in env
    keys = {line.split("=", 1)[0] for line in env.splitlines()}
    assert {"PATRONI_SUPERUSER_USERNAME", "PATRONI_REPLICATION_USERNAME", "PATRONI_REWIND_USERNAME",
            "PATRONI_RESTAPI_USERNAME", "PATRONI_RESTAPI_PASSWORD"} <= keys


def test_haproxy_write_and_read_backends(plans: Plans, site: Site) -> None:
    sections = parse_config(plans["haproxy-02"].file(layout.host_paths(site).haproxy_cfg).content)
    write, read = sections["listen postgres_write"], sections["listen postgres_read"]
    # haproxy-02's own address (10.0.0.12), and the write port on loopback for the local PgBouncer
    assert [line for line in write if line.startswith("bind ")] == ["bind 10.0.0.12:5432", "bind 127.0.0.1:5432"]
    assert [line for line in read if line.startswith("bind ")] == ["bind 10.0.0.12:5433"]
    assert "bind 10.0.0.12:8404" in sections["listen stats"]
    assert "option httpchk GET /primary" in write and "balance roundrobin" not in write
    # refused, never sent to a replica, unless exactly one server is UP (a restarted HAProxy counts all UP)
    assert "tcp-request connection reject unless { nbsrv(postgres_write) eq 1 }" in write
    assert "balance roundrobin" in read and any(line.startswith("option httpchk GET /replica") for line in read)
    for body in (write, read):
        default = next(line.split() for line in body if line.startswith("default-server "))
        settings = dict(zip(default[1::2], default[2::2], strict=False))
        assert settings["inter"] == "1s" and settings["fall"] == "3" and settings["rise"] == "2"
        assert settings["on-marked-down"] == "shutdown-sessions"
        servers = [line for line in body if line.startswith("server ")]
        assert len(servers) == 3
        assert all(line.endswith("check port 8008") and "backup" not in line for line in servers)
    other = parse_config(plans["haproxy-01"].file(layout.host_paths(site).haproxy_cfg).content)
    assert [line for line in other["listen postgres_read"] if line.startswith("bind ")] == ["bind 10.0.0.11:5433"]


def test_pgbouncer_ini(plans: Plans, site: Site) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(plans["haproxy-01"].file(layout.host_paths(site).pgbouncer_ini).content)
    bouncer = parser["pgbouncer"]
    assert bouncer["listen_addr"] == "10.0.0.11" and bouncer["listen_port"] == "6432"  # haproxy-01's address only
    assert bouncer["auth_type"] == "scram-sha-256" and bouncer["pool_mode"] == "transaction"
    assert (bouncer["max_client_conn"], bouncer["default_pool_size"], bouncer["reserve_pool_size"]) == \
        ("1000", "25", "5")
    assert bouncer["auth_file"] == f"{layout.C_PGBOUNCER_DIR}/userlist.txt"
    assert parser["databases"]["keybuzz"] == "host=127.0.0.1 port=5432 dbname=keybuzz"
    spec = plans["haproxy-01"].container("pgbouncer")
    assert layout.host_paths(site).userlist in spec.restart_on and all(m.read_only for m in spec.mounts)


def test_lint_clean_on_the_seed_site(site: Site) -> None:
    from keybuzz.lint import lint

    errors = [f for f in lint(site) if f.severity == "error"]
    assert errors == []


def test_the_exporter_listens_on_its_servers_address_only(site: Site) -> None:
    plans = module_by_name("monitoring").render(site)  # the monitoring module runs the exporter the module declares
    for host, ip in zip(DB, DB_IPS, strict=True):
        assert plans[host].container("postgres-exporter").command == (f"--web.listen-address={ip}:9187",)
