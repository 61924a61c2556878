"""The RabbitMQ module's rendered files, parsed (rabbitmq.conf, Erlang terms, JSON, HAProxy, shell)
and checked; the management API parsers on answers of the shape RabbitMQ gives."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from keybuzz.errors import InputErrors
from keybuzz.haproxy import parse_config
from keybuzz.modules.rabbitmq import api, conf, layout, lb
from keybuzz.modules.rabbitmq.render import render
from keybuzz.registry import load_site, module_by_name
from keybuzz.render import Plans
from keybuzz.site import Site
from keybuzz.site.writer import ServerRow

NODES = ("queue-01", "queue-02", "queue-03")
NODE_IPS = ("10.0.0.126", "10.0.0.127", "10.0.0.128")
LBS = ("haproxy-01", "haproxy-02")


@pytest.fixture
def plans(site: Site) -> Plans:
    return render(site)


def content(plans: Plans, host: str, path: str) -> str:
    text = plans[host].file(path).content
    assert isinstance(text, str)
    return text


def test_hosts_get_what_their_role_needs(plans: Plans) -> None:
    assert set(plans) == {*NODES, *LBS}
    for host in NODES:
        assert [c.name for c in plans[host].containers] == ["rabbitmq"]
    for host in LBS:
        assert [c.name for c in plans[host].containers] == ["haproxy-rabbitmq"]


def test_module_is_registered_and_needs_an_odd_quorum(seed_site: Path, kb) -> None:
    module = module_by_name("rabbitmq")
    assert module.implemented and module.number == 5 and module.quorum and module.quorum.role == "queue"
    kb.write_servers(seed_site, [*kb.small_rows(), *[ServerRow(f"queue-{i}", f"10.0.0.{126 + i}", ("queue",))
                                                     for i in range(2)]])
    with pytest.raises(InputErrors, match="2 servers with role queue: a quorum needs an odd count"):
        load_site(seed_site)


def test_rabbitmq_conf_forms_one_cluster_that_pauses_a_minority(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    for host, ip in zip(NODES, NODE_IPS, strict=True):
        values = conf.parse_conf(content(plans, host, paths.rabbitmq_conf))
        assert values["cluster_formation.peer_discovery_backend"] == "classic_config"
        assert [values[f"cluster_formation.classic_config.nodes.{i}"] for i in (1, 2, 3)] == [
            f"rabbit@{n}" for n in NODES]
        assert values["cluster_partition_handling"] == "pause_minority"
        assert values["net_ticktime"] == "10"
        assert values["listeners.tcp.1"] == f"{ip}:5672"  # the private address only, never 0.0.0.0
        assert values["management.tcp.ip"] == ip and values["management.tcp.port"] == "15672"
        assert values["prometheus.tcp.port"] == "15692"
        # Alarms from settings, not from what the host reports.
        assert values["vm_memory_high_watermark.absolute"] == "1GB"
        assert values["disk_free_limit.absolute"] == "2GB"
        assert values["load_definitions"] == layout.C_DEFINITIONS
        assert not any("mirror" in key or "ha-mode" in key for key in values)
        env = content(plans, host, paths.env_conf)
        assert f"NODENAME=rabbit@{host}" in env.splitlines()


def test_settings_reach_the_rendered_files(seed_site: Path) -> None:
    config = seed_site / "keybuzz.yaml"
    data = yaml.safe_load(config.read_text())
    data["rabbitmq"] = {"memory_limit": "3GB", "disk_free_limit": "5GB", "vhost": "shop"}
    data.setdefault("tuning", {})["rabbitmq"] = {"net_ticktime_s": 20, "failure_detector_poll_ms": 2500}
    config.write_text(yaml.safe_dump(data))
    site = load_site(seed_site)
    plans = render(site)
    paths = layout.host_paths(site)
    values = conf.parse_conf(content(plans, "queue-01", paths.rabbitmq_conf))
    assert (values["vm_memory_high_watermark.absolute"], values["disk_free_limit.absolute"],
            values["net_ticktime"]) == ("3GB", "5GB", "20")
    assert "{poll_interval, 2500}" in content(plans, "queue-01", paths.advanced_config)
    definitions = json.loads(content(plans, "queue-01", paths.definitions))
    assert "shop" in {v["name"] for v in definitions["vhosts"]}


def test_bad_settings_are_input_errors_with_their_line(seed_site: Path) -> None:
    config = seed_site / "keybuzz.yaml"
    data = yaml.safe_load(config.read_text())
    data["rabbitmq"] = {"memory_limit": "lots"}
    data.setdefault("tuning", {})["rabbitmq"] = {"net_ticktime_s": 1}
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(InputErrors) as caught:
        load_site(seed_site)
    text = str(caught.value)
    assert "memory_limit" in text and "net_ticktime_s" in text and "keybuzz.yaml:" in text


def test_advanced_config_binds_distribution_to_the_private_address(plans: Plans, site: Site) -> None:
    for host, ip in zip(NODES, NODE_IPS, strict=True):
        text = content(plans, host, layout.host_paths(site).advanced_config)
        body = " ".join(line for line in text.splitlines() if not line.startswith("%"))
        assert body.endswith("].") and body.count("[") == body.count("]") and body.count("{") == body.count("}")
        found = re.search(r"\{inet_dist_use_interface, \{(\d+),(\d+),(\d+),(\d+)\}\}", body)
        assert found and ".".join(found.groups()) == ip
        assert "{aten, [{poll_interval, 1000}]}" in body
        env = content(plans, host, layout.host_paths(site).env_conf).splitlines()
        assert f"export ERL_EPMD_ADDRESS={ip}" in env  # epmd too: not on the public interface


def test_nodes_resolve_each_other_inside_their_containers(plans: Plans) -> None:
    for host in NODES:
        assert plans[host].containers[0].extra_hosts == tuple(zip(NODES, NODE_IPS, strict=True))


def test_definitions_hold_verifiable_hashes_and_no_password(plans: Plans, site: Site) -> None:
    spec = plans["queue-01"].file(layout.host_paths(site).definitions)
    assert spec.secret and spec.mode == 0o600
    text = content(plans, "queue-01", spec.path)
    creds = site.credentials["rabbitmq"]
    assert not any(creds[k] in text for k in creds if k.endswith("_PASSWORD") or k.endswith("_COOKIE"))
    document = json.loads(text)
    users = {u["name"]: u for u in document["users"]}
    assert set(users) == {creds["RABBITMQ_ADMIN_USER"], creds["RABBITMQ_APP_USER"], creds["RABBITMQ_MONITOR_USER"]}
    assert "guest" not in users
    for role in ("ADMIN", "APP", "MONITOR"):
        user = users[creds[f"RABBITMQ_{role}_USER"]]
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert digest == hashlib.sha256(salt + creds[f"RABBITMQ_{role}_PASSWORD"].encode()).digest()
    assert users[creds["RABBITMQ_ADMIN_USER"]]["tags"] == ["administrator"]
    assert users[creds["RABBITMQ_APP_USER"]]["tags"] == []  # no management rights for the application
    assert users[creds["RABBITMQ_MONITOR_USER"]]["tags"] == ["monitoring"]
    vhost = next(v for v in document["vhosts"] if v["name"] == "keybuzz")
    assert vhost["metadata"]["default_queue_type"] == "quorum"
    app_permissions = [p for p in document["permissions"] if p["user"] == creds["RABBITMQ_APP_USER"]]
    assert [p["vhost"] for p in app_permissions] == ["keybuzz"]
    # The same file on every node and on every render: a re-run changes nothing.
    assert all(content(plans, host, spec.path) == text for host in NODES)
    assert conf.definitions(site) == text


def test_password_hash_matches_rabbitmqs_documented_example() -> None:
    assert conf.password_hash("test12", bytes.fromhex("908DC60A")) == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"


def test_cookie_is_read_only_for_the_rabbitmq_user_and_never_in_argv_or_env(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    cookie = site.credentials["rabbitmq"]["RABBITMQ_ERLANG_COOKIE"]
    for host in NODES:
        spec = plans[host].file(paths.cookie)
        assert spec.secret and spec.mode == 0o400 and spec.owner is not None
        assert spec.path.startswith(paths.data + "/")  # the rabbitmq user's HOME in the container
        container = plans[host].containers[0]
        assert container.env_file is None and cookie not in " ".join(container.command)
        assert container.user == "rabbitmq" and container.hostname == host


def test_entry_script_is_valid_shell_and_skips_the_debian_wrapper(plans: Plans, site: Site) -> None:
    script = content(plans, "queue-01", layout.host_paths(site).script)
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "/usr/sbin/rabbitmq-server" not in script.replace("never Debian's /usr/sbin wrapper", "")
    assert re.search(r'exec "\$server"', script)


def test_a_changed_config_restarts_the_node_and_changed_definitions_do_not(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    container = plans["queue-01"].containers[0]
    assert {paths.rabbitmq_conf, paths.advanced_config, paths.env_conf, paths.plugins} <= set(container.restart_on)
    assert paths.definitions not in container.restart_on  # imported into the running cluster instead


def test_haproxy_checks_each_node_through_its_management_api(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    text = content(plans, "haproxy-01", paths.haproxy_cfg)
    sections = parse_config(text)
    lines = sections[f"listen {lb.BACKEND}"]
    assert "bind 10.0.0.11:5672" in lines and "balance roundrobin" in lines  # haproxy-01's own address only
    assert "option httpchk" in lines and "http-check connect port 15672" in lines
    send = next(line for line in lines if line.startswith("http-check send"))
    assert "uri /api/health/checks/local-alarms" in send and '"Basic ${RABBITMQ_CHECK_AUTH}"' in send
    assert "http-check expect status 200" in lines
    servers = [line.split() for line in lines if line.startswith("server ")]
    assert [(s[1], s[2], s[3]) for s in servers] == [(h, f"{ip}:5672", "check")
                                                      for h, ip in zip(NODES, NODE_IPS, strict=True)]
    assert "option redispatch 1" in lines and "timeout connect 1s" in lines
    assert any("fall 2" in line and "on-marked-down shutdown-sessions" in line for line in lines)
    assert "listen stats" in sections and f"bind 10.0.0.11:{layout.stats_port(site)}" in sections["listen stats"]


def test_haproxy_health_check_credentials_live_in_its_secret_env_file(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    creds = site.credentials["rabbitmq"]
    assert creds["RABBITMQ_MONITOR_PASSWORD"] not in content(plans, "haproxy-01", paths.haproxy_cfg)
    env = plans["haproxy-01"].file(paths.haproxy_env)
    assert env.secret and env.mode == 0o600
    key, _, token = content(plans, "haproxy-01", env.path).strip().partition("=")
    assert key == "RABBITMQ_CHECK_AUTH"
    assert base64.b64decode(token).decode() == f"{creds['RABBITMQ_MONITOR_USER']}:{creds['RABBITMQ_MONITOR_PASSWORD']}"
    assert plans["haproxy-01"].containers[0].env_file == paths.haproxy_env


NODES_ANSWER = [
    {"name": "rabbit@queue-01", "running": True, "partitions": [], "mem_alarm": False, "disk_free_alarm": False},
    {"name": "rabbit@queue-02", "running": True, "partitions": ["rabbit@queue-03"], "mem_alarm": True,
     "disk_free_alarm": False},
    {"name": "rabbit@queue-03", "running": False, "partitions": [], "mem_alarm": False, "disk_free_alarm": False},
]


def test_node_view_parses_running_partitions_and_alarms() -> None:
    view = api.parse_nodes("queue-01", NODES_ANSWER)
    assert view.reachable and view.running == ("rabbit@queue-01", "rabbit@queue-02")
    assert view.partitions == ("rabbit@queue-03",) and view.alarms == ("rabbit@queue-02 memory",)
    assert not api.parse_nodes("queue-01", "<html>busy</html>").reachable


def test_cluster_problems_name_every_problem(site: Site) -> None:
    healthy = api.parse_nodes("queue-01", [{**n, "running": True, "partitions": [], "mem_alarm": False}
                                           for n in NODES_ANSWER])
    assert api.cluster_problems(site, [healthy, healthy, healthy]) == []
    sick = api.parse_nodes("queue-02", NODES_ANSWER)
    down = api.NodeView("queue-03", False, error="timed out after 3 s")
    problems = api.cluster_problems(site, [healthy, sick, down])
    assert problems == ["queue-02 sees rabbit@queue-03 not running",
                        "queue-02 is partitioned from rabbit@queue-03",
                        "queue-02 reports alarms: rabbit@queue-02 memory",
                        "queue-03: management API unreachable (timed out after 3 s)"]


def test_queue_state_reads_leader_members_and_type() -> None:
    state = api.parse_queue({"name": "q", "type": "quorum", "leader": "rabbit@queue-02",
                             "members": ["rabbit@queue-01", "rabbit@queue-02"], "online": ["rabbit@queue-02"]})
    assert (state.leader, state.members, state.online, state.queue_type) == (
        "rabbit@queue-02", ("rabbit@queue-01", "rabbit@queue-02"), ("rabbit@queue-02",), "quorum")
    classic = api.parse_queue({"name": "c", "type": "classic", "node": "rabbit@queue-01"})
    assert classic.leader == "rabbit@queue-01" and classic.members == ()


def test_vhost_and_queue_names_are_quoted_for_api_paths() -> None:
    assert api.quote("/") == "%2F" and api.quote("keybuzz.drill.x") == "keybuzz.drill.x"
