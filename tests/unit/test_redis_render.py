"""The Redis module's rendered files, parsed (Redis directives, HAProxy sections, shell) and checked."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from keybuzz.containers import ContainerCli
from keybuzz.errors import InputErrors
from keybuzz.haproxy import parse_config
from keybuzz.lint import lint
from keybuzz.modules.redis import bootguard, layout, lb
from keybuzz.modules.redis.conf import directive, parse_directives
from keybuzz.modules.redis.render import render
from keybuzz.registry import load_site, module_by_name
from keybuzz.render import Plans
from keybuzz.site import Site

REDIS = ("redis-01", "redis-02", "redis-03")
REDIS_IPS = ("10.0.0.123", "10.0.0.124", "10.0.0.125")
LBS = ("haproxy-01", "haproxy-02")



@pytest.fixture
def plans(site: Site) -> Plans:
    return render(site)


def redis_conf(plans: Plans, site: Site, host: str) -> str:
    return plans[host].file(layout.host_paths(site).redis_conf).content


def sentinel_conf(plans: Plans, site: Site, host: str) -> str:
    return plans[host].file(layout.host_paths(site).sentinel_conf).content


def haproxy_sections(plans: Plans, site: Site, host: str = "haproxy-01") -> dict[str, list[str]]:
    return parse_config(plans[host].file(layout.host_paths(site).haproxy_cfg).content)


def test_hosts_get_what_their_role_needs(plans: Plans) -> None:
    assert set(plans) == {*REDIS, *LBS}
    for host in REDIS:
        assert [c.name for c in plans[host].containers] == ["redis", "redis-sentinel"]
    for host in LBS:
        assert [c.name for c in plans[host].containers] == ["haproxy-redis"]


def test_module_is_registered_and_needs_an_odd_quorum(site: Site, seed_site: Path, kb) -> None:
    module = module_by_name("redis")
    assert module.implemented and module.render(site).keys() == render(site).keys()
    assert module.requirements(site) == [] and module.quorum and module.quorum.role == "redis"
    kb.write_servers(seed_site, [r for r in kb.small_rows() if r.hostname != "redis-2"])
    with pytest.raises(InputErrors, match="2 servers with role redis: a quorum needs an odd count"):
        load_site(seed_site)


def test_redis_conf_settings(plans: Plans, site: Site) -> None:
    for host, ip in zip(REDIS, REDIS_IPS, strict=True):
        text = redis_conf(plans, site, host)
        assert directive(text, "bind") == [[ip, "127.0.0.1"]]
        assert directive(text, "replica-announce-ip") == [[ip]]
        assert directive(text, "appendonly") == [["yes"]]
        assert directive(text, "save") == [["900", "1"], ["300", "10"]]  # the seed's save points
        assert directive(text, "maxmemory-policy") == [["allkeys-lru"]]
        assert directive(text, "protected-mode") == [["yes"]]
        assert directive(text, "min-replicas-to-write") == [["1"]]
        assert directive(text, "min-replicas-max-lag") == [["2"]]
        assert directive(text, "dir") == [[layout.C_SERVER_DIR]]
        assert directive(text, "repl-diskless-sync-delay") == [["0"]]  # a rejoining replica syncs at once
        # The role is the boot guard's decision at every start, never rendered.
        assert not directive(text, "replicaof") and not directive(text, "slaveof")
        assert not directive(text, "requirepass") and not directive(text, "masterauth")


def test_sentinel_conf_settings(plans: Plans, site: Site) -> None:
    name = layout.MASTER_NAME
    for host, ip in zip(REDIS, REDIS_IPS, strict=True):
        text = sentinel_conf(plans, site, host)
        assert directive(text, "sentinel", "monitor") == [[name, "10.0.0.123", "6379", "2"]]  # quorum 2 of 3
        assert directive(text, "sentinel", "announce-ip") == [[ip]]
        assert directive(text, "sentinel", "down-after-milliseconds") == [[name, "1000"]]
        assert directive(text, "sentinel", "failover-timeout") == [[name, "10000"]]
        assert directive(text, "bind") == [[ip, "127.0.0.1"]]
        # The seed ran `protected-mode no` without a password: protected mode stays on here, and
        # requirepass/sentinel-pass/auth-pass are added from the env file at first start.
        assert directive(text, "protected-mode") == [["yes"]]
        words = {w[0] if w[0] != "sentinel" else f"sentinel {w[1]}" for w in parse_directives(text)}
        assert not words & {"requirepass", "sentinel auth-pass", "sentinel sentinel-pass"}


def test_timings_and_write_safety_come_from_keybuzz_yaml(seed_site: Path, kb: type) -> None:
    site = kb.retune(seed_site, "sentinel", down_after_ms=1500, failover_timeout_ms=20000,
                                min_replicas_to_write=2, min_replicas_max_lag_s=5)
    plans = render(site)
    sentinel = sentinel_conf(plans, site, "redis-02")
    assert directive(sentinel, "sentinel", "down-after-milliseconds") == [[layout.MASTER_NAME, "1500"]]
    assert directive(sentinel, "sentinel", "failover-timeout") == [[layout.MASTER_NAME, "20000"]]
    node = redis_conf(plans, site, "redis-02")
    assert directive(node, "min-replicas-to-write") == [["2"]]
    assert directive(node, "min-replicas-max-lag") == [["5"]]


def test_haproxy_sends_clients_to_the_master_only(plans: Plans, site: Site) -> None:
    sections = haproxy_sections(plans, site)
    # refused, never sent to a replica, unless exactly one server is UP (a restarted HAProxy counts all UP)
    assert sections["frontend redis"] == ["bind 10.0.0.11:6379",  # haproxy-01's own address only
                                          "tcp-request connection reject unless { nbsrv(redis) eq 1 }",
                                          "default_backend redis"]
    backend = sections["backend redis"]
    assert "balance first" in backend
    assert not any(line.startswith("balance roundrobin") for line in sections_lines(sections))
    checks = [line for line in backend if line.startswith("tcp-check")]
    assert checks == ["tcp-check connect", 'tcp-check send "AUTH ${REDIS_PASSWORD}\\r\\n"',
                      "tcp-check expect string +OK",
                      'tcp-check send "SET keybuzz:replication-check 1\\r\\nWAIT 1 100\\r\\nINFO replication\\r\\n'
                      'QUIT\\r\\n"', 'tcp-check expect rstring "[+]OK\\r\\n:[1-9]\\r\\n"',
                      "tcp-check expect string role:master"]
    default = next(line for line in backend if line.startswith("default-server")).split()
    for word in ("inter 250ms", "fall 2", "rise 2", "on-marked-down shutdown-sessions"):
        first, second = word.split()
        assert default[default.index(first) + 1] == second
    servers = [line.split() for line in backend if line.startswith("server ")]
    assert [(s[1], s[2]) for s in servers] == [(h, f"{ip}:6379") for h, ip in zip(REDIS, REDIS_IPS, strict=True)]
    for index, server in enumerate(servers):  # each node's check passes through its gate
        assert server[3:] == ["check", "addr", "127.0.0.1", "port", str(lb.gate_port(index))]


def test_the_master_check_needs_a_replica_to_confirm_its_write(plans: Plans, site: Site) -> None:
    """The check's regex, as HAProxy reads it, against the answers Redis gives (SET, WAIT, INFO, QUIT)."""
    backend = haproxy_sections(plans, site)["backend redis"]
    quoted = next(line for line in backend if "expect rstring" in line).split("rstring ", 1)[1].strip('"')
    pattern = re.compile(quoted.replace("\\r", "\r").replace("\\n", "\n"))  # HAProxy's quoting: \r \n bytes
    info = "$40\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\r\n+OK\r\n"
    answers = {
        "master, both replicas confirm": ("+OK\r\n+OK\r\n:2\r\n" + info, True),
        "master, one replica confirms": ("+OK\r\n:1\r\n" + info, True),
        "master cut from its replicas": ("+OK\r\n+OK\r\n:0\r\n" + info, False),
        "master past min-replicas-max-lag": ("+OK\r\n-NOREPLICAS Not enough good replicas to write.\r\n:2\r\n" + info,
                                             False),
        "replica": ("+OK\r\n-READONLY You can't write against a read only replica.\r\n-ERR WAIT cannot be used "
                    "with replica instances.\r\n$30\r\nrole:slave\r\n+OK\r\n", False),
    }
    for what, (reply, up) in answers.items():
        assert bool(pattern.search(reply)) is up, what


def sections_lines(sections: dict[str, list[str]]) -> list[str]:
    return [line for body in sections.values() for line in body]


def test_gates_open_only_on_a_sentinel_majority(plans: Plans, site: Site) -> None:
    sections = haproxy_sections(plans, site)
    for index, (host, ip) in enumerate(zip(REDIS, REDIS_IPS, strict=True)):
        gate = sections[f"frontend redis_gate_{host}"]
        assert f"bind 127.0.0.1:{lb.gate_port(index)}" in gate
        acls = {line.split()[1]: line.split(maxsplit=2)[2] for line in gate if line.startswith("acl ")}
        assert acls == {"sentinels_name_it": f"nbsrv(redis_votes_{host}) ge 2",  # a majority of 3 Sentinels
                        "it_is_up": f"srv_is_up(redis/{host})", "none_up": "nbsrv(redis) eq 0"}
        assert "tcp-request connection reject unless sentinels_name_it it_is_up or sentinels_name_it none_up" in gate
        direct = sections[f"backend redis_direct_{host}"]
        assert f"server {host} {ip}:6379" in direct and "retries 0" in direct
        votes = sections[f"backend redis_votes_{host}"]
        assert 'tcp-check send "AUTH ${REDIS_SENTINEL_PASSWORD}\\r\\n"' in votes
        assert 'tcp-check send "SENTINEL get-master-addr-by-name kb-redis-master\\r\\n"' in votes
        assert "timeout check 300ms" in votes  # Sentinel ignores QUIT: a wrong answer must not hold the check
        assert f'tcp-check expect string "\\n{ip}\\r\\n"' in votes  # 10.0.0.12 must not match 10.0.0.123
        voters = [line.split()[2] for line in votes if line.startswith("server ")]
        assert voters == [f"{sentinel}:26379" for sentinel in REDIS_IPS]  # every Sentinel votes


def test_stats_port_differs_from_the_postgres_haproxy(plans: Plans, site: Site) -> None:
    stats = haproxy_sections(plans, site, "haproxy-02")["listen stats"]
    assert f"bind 10.0.0.12:{site.config.haproxy.stats_port + 1}" in stats


def test_haproxy_config_is_valid_for_haproxy(plans: Plans, site: Site, tmp_path: Path) -> None:
    binary = Path("/usr/sbin/haproxy")
    if not binary.exists():
        pytest.skip("haproxy is not installed (scripts/setup-machine.sh installs it)")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(plans["haproxy-01"].file(layout.host_paths(site).haproxy_cfg).content)
    env = {"REDIS_PASSWORD": "x" * 32, "REDIS_SENTINEL_PASSWORD": "y" * 32, "PATH": "/usr/sbin:/usr/bin"}
    result = subprocess.run([str(binary), "-c", "-f", str(cfg)], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr


def test_containers(plans: Plans, site: Site) -> None:
    paths = layout.host_paths(site)
    server = plans["redis-01"].container("redis")
    sentinel = plans["redis-01"].container("redis-sentinel")
    for spec in (server, sentinel):
        assert spec.image == site.image("redis") and spec.network_host
        assert spec.env_file == paths.env_file and spec.entrypoint == "/bin/sh"
        assert {(m.source, m.target, m.read_only) for m in spec.mounts} == {
            (paths.conf, layout.C_CONF_DIR, True), (paths.data, layout.C_DATA_DIR, False)}
    assert server.command == (layout.C_SCRIPT, "server") and sentinel.command == (layout.C_SCRIPT, "sentinel")
    assert set(server.restart_on) == {paths.redis_conf, paths.script}
    # Sentinel owns its state after the first start: the template never restarts it.
    assert paths.sentinel_conf not in sentinel.restart_on
    proxy = plans["haproxy-01"].container("haproxy-redis")
    assert proxy.image == site.image("haproxy") and proxy.env_file == paths.env_file
    assert paths.haproxy_cfg in proxy.restart_on


def test_data_is_kept_by_cleanup_unless_purged(plans: Plans, site: Site) -> None:
    data = [d for d in plans["redis-01"].directories if d.data]
    assert [d.path for d in data] == [layout.host_paths(site).data]
    assert {d.mode for d in plans["redis-01"].directories if d.path.endswith("secrets")} == {0o700}


def test_secrets_only_in_the_secret_env_file(plans: Plans, site: Site, seed_site: Path, kb) -> None:
    secret_values = kb.secret_values(seed_site)
    env_path = layout.host_paths(site).env_file
    for host, plan in plans.items():
        env = plan.file(env_path)
        assert env.secret and env.mode == 0o600
        values = dict(line.split("=", 1) for line in env.content.splitlines())
        assert values == {key: site.secret("redis", key)
                          for key in ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "REDIS_MONITOR_PASSWORD")}
        public = [f.content for f in plan.files if not f.secret]
        public += [" ".join(ContainerCli("podman").run(c, "0")) for c in plan.containers]
        for text in public:
            assert not [v for v in secret_values if v in text], host


def test_lint_passes_the_redis_render(site: Site) -> None:
    """No secret outside credentials (KB001), pinned images (KB002), no VIP bind (KB003), no round robin (KB004)."""
    findings = lint(site, [module_by_name("redis")])
    assert [f for f in findings if f.rule in ("KB001", "KB002", "KB003", "KB004")] == []


def test_boot_guard_script(plans: Plans, site: Site, tmp_path: Path) -> None:
    text = plans["redis-02"].file(layout.host_paths(site).script).content
    settings = dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z_]+=", line))
    assert {k: shlex.split(v)[0] for k, v in settings.items()} == {
        "SELF_IP": "10.0.0.124", "SENTINELS": " ".join(REDIS_IPS), "INITIAL_MASTER": "10.0.0.123",
        "MASTER_NAME": layout.MASTER_NAME, "REDIS_PORT": "6379", "SENTINEL_PORT": "26379",
        "GUARD_TRIES": str(bootguard.GUARD_TRIES), "SERVER_DIR": layout.C_SERVER_DIR,
        "SENTINEL_DIR": layout.C_SENTINEL_DIR, "CONF": layout.C_CONF_DIR, "MONITOR_USER": "keybuzz-monitor",
        "SERVER_MONITOR_ACL": bootguard.SERVER_MONITOR_ACL, "SENTINEL_MONITOR_ACL": bootguard.SENTINEL_MONITOR_ACL}
    script = tmp_path / "keybuzz-redis.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    # Passwords come from the environment through REDISCLI_AUTH and config files, never argv.
    assert "REDISCLI_AUTH=" in text and " -a " not in text


# What redis_exporter (1.45, the lab's, and 1.62) sends with --config-command=- and no key or stream
# option (exporter/*.go): PING, CLIENT SETNAME, INFO, LATENCY, SLOWLOG; SENTINEL on a Sentinel.
EXPORTER_READS = {"ping", "info", "client|setname", "slowlog|len", "latency|latest", "latency|histogram"}
EXPORTER_READS_SENTINEL = {"ping", "info", "client|setname", "sentinel|masters", "sentinel|ckquorum",
                           "sentinel|sentinels", "sentinel|slaves"}


@pytest.mark.parametrize(("acl", "reads"), [(bootguard.SERVER_MONITOR_ACL, EXPORTER_READS),
                                            (bootguard.SENTINEL_MONITOR_ACL, EXPORTER_READS_SENTINEL)])
def test_the_metrics_user_may_run_what_the_exporter_reads_and_nothing_else(acl: str, reads: set[str]) -> None:
    rules = acl.split()
    assert rules[0] == "-@all" and set(rules[1:]) == {f"+{command}" for command in reads}
    # No key or channel pattern (no data), no CONFIG (requirepass and masterauth in clear), no SLOWLOG GET
    # (slow commands' arguments), no write, no failover.
    assert not [r for r in rules if r[0] in "~%&" or "config" in r or r in ("+slowlog", "+slowlog|get", "+@all")]


def test_the_exporters_skip_config_and_listen_on_the_private_address(site: Site) -> None:
    plans = module_by_name("monitoring").render(site)
    for job in ("redis", "sentinel"):
        command = plans["redis-01"].container(f"{job}-exporter").command
        assert "--config-command=-" in command
        port = {"redis": 9121, "sentinel": 9122}[job]
        assert f"--web.listen-address=10.0.0.123:{port}" in command


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_a_changed_metrics_user_reaches_an_existing_sentinel_conf(plans: Plans, site: Site, tmp_path: Path) -> None:
    """The rendered entrypoint, run against a sentinel.conf Sentinel rewrote (hashed password, an old
    ACL): the metrics user's line is the current one, every other line kept in place."""
    data, stubs = tmp_path / "sentinel", tmp_path / "bin"
    data.mkdir()
    stubs.mkdir()
    kept = ["port 26379", f"sentinel monitor {layout.MASTER_NAME} 10.0.0.125 6379 2",
            "user default on sanitize-payload #0b14 ~* &* +@all", "sentinel current-epoch 7"]
    stale = "user keybuzz-monitor on sanitize-payload #9f86 resetchannels -@all +info +config|get"
    (data / "sentinel.conf").write_text("\n".join([*kept[:3], stale, kept[3]]) + "\n")
    _stub(stubs, "find", "exit 0")  # the chown of the data dir to the image's redis user
    _stub(stubs, "su-exec", 'shift; exec "$@"')
    _stub(stubs, "redis-server", 'cat "$1"')  # what Sentinel would start with
    text = plans["redis-02"].file(layout.host_paths(site).script).content
    text = re.sub(r"^SENTINEL_DIR=.*$", f"SENTINEL_DIR={shlex.quote(str(data))}", text, flags=re.M)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "REDIS_PASSWORD": "p1", "REDIS_SENTINEL_PASSWORD": "p2",
           "REDIS_MONITOR_PASSWORD": "new-monitor-password"}
    for _ in range(2):  # every start, not only the first after a change
        result = subprocess.run(["sh", "-c", text, "keybuzz-redis.sh", "sentinel"], env=env, capture_output=True,
                                text=True, timeout=10, check=False)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert [line for line in lines if not line.startswith("user keybuzz-monitor ")] == kept
        assert [line for line in lines if line.startswith("user keybuzz-monitor ")] == [
            f"user keybuzz-monitor on >new-monitor-password {bootguard.SENTINEL_MONITOR_ACL}"]
    assert [f.name for f in data.iterdir()] == ["sentinel.conf"]  # written through a mktemp file, renamed
    assert (data / "sentinel.conf").stat().st_mode & 0o077 == 0
