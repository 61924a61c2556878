"""Base OS on the lab: real nftables tables and real sshd inside every lab host, through the engine.

The lab is rebuilt first (hosts from nothing), then, in order: install, re-run (0 changes, 0
restarts), a dry-run that shows the rule diff and changes nothing, validate with listeners behind
the ports (the whole matrix, the path through a load balancer, password refused, key accepted,
machine-wide settings reported as not applied), Redis installed behind the firewall with all its
checks green, the refusals that keep the installer in (before any
change; an sshd setting overridden by a Match block; a ruleset no fresh login can confirm, rolled
back), and `lab isolate` next to the firewall. The lab is rebuilt at the end: other modules' tests
find plain hosts. Timings are printed; bench/base_os.py measures them on the seed topology.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import re
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from engine_runs import Run, cleanup, install, validate  # tests/lab is on sys.path
from rich.console import Console

from keybuzz.engine import Engine, install_modules
from keybuzz.engine.install import InstallFailed
from keybuzz.lab import Lab
from keybuzz.modules.base_os import layout
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
MODULE = module_by_name("base_os")
LISTENER = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(64)\nheld=[]\nwhile True:\n held.append(s.accept()[0])\n")


def table_hash(lab: Lab, host: str) -> str:
    listing = lab.exec(host, ["nft", "list", "table", "inet", layout.TABLE]).stdout
    return next((line.split(layout.HASH_MARK)[1].rstrip('"') for line in listing.splitlines()
                 if layout.HASH_MARK in line), "")


def state(lab: Lab, site: Site) -> dict[str, tuple[str, str]]:
    """Per host: the loaded table's hash and the sshd drop-in's sha256 (what a refused run must not touch)."""
    out = {}
    for server in site.servers:
        dropin = lab.exec(server.hostname, ["sh", "-c", f"sha256sum {layout.SSHD_DROPIN} 2>/dev/null"]).stdout
        out[server.hostname] = (table_hash(lab, server.hostname), dropin.split()[0] if dropin else "")
    return out


def connect(lab: Lab, source: str, address: str, port: int) -> str:
    """A TCP connect from inside `source`: open, refused or timeout (2 s)."""
    code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1],int(sys.argv[2])),2);print('open')\n"
            "except socket.timeout:\n print('timeout')\nexcept ConnectionRefusedError:\n print('refused')\n")
    return lab.exec(source, ["python3", "-c", code, address, str(port)], timeout=30).stdout.strip()


class Config:
    """keybuzz.yaml of the lab site, changed for one test and put back."""

    def __init__(self, lab: Lab):
        self.path = lab.site_dir / "keybuzz.yaml"
        self.original = self.path.read_text()

    def change(self, edit: Callable[[dict], None]) -> Site:
        config = yaml.safe_load(self.original)
        edit(config.setdefault("base_os", {}))
        self.path.write_text(yaml.safe_dump(config, sort_keys=False))
        return load_site(self.path.parent)

    def restore(self) -> None:
        self.path.write_text(self.original)


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    """A freshly built lab (no keybuzz table, the lab's own sshd_config and resolv.conf); rebuilt at the end."""
    subnet = ipaddress.IPv4Network(lab.subnet)
    lab.down()
    lab.up("small", subnet)
    try:
        yield load_site(lab.site_dir)
    finally:
        lab.restore()
        lab.down()
        lab.up("small", subnet)


@pytest.fixture(scope="module")
def first_install(site: Site) -> Run:
    run = install(site, MODULE)
    rules = sum(len(fw.allows) for fw in MODULE.firewalls(site).values())
    print(f"\nbase_os from nothing on {len(site.servers)} servers: {run.seconds:.1f} s, {run.stats.changes} changes, "
          f"{rules} accept rules")
    return run


@pytest.fixture
def config(lab: Lab) -> Iterator[Config]:
    edits = Config(lab)
    try:
        yield edits
    finally:
        edits.restore()


def test_install_from_nothing_then_rerun_changes_nothing(lab: Lab, site: Site, first_install: Run) -> None:
    assert first_install.stats.changes > 0 and first_install.stats.restarts == 0
    assert "sshd: reload with the hardened settings" in first_install.output
    assert "lab: not applied (machine-wide)" in first_install.output
    fws = MODULE.firewalls(site)
    for server in site.servers:
        assert table_hash(lab, server.hostname) == fws[server.hostname].digest
    rerun = install(site, MODULE)
    print(f"\nbase_os re-run: {rerun.seconds:.1f} s")
    assert (rerun.stats.changes, rerun.stats.restarts) == (0, 0), rerun.output


def test_machine_wide_settings_never_reach_the_machine(lab: Lab, site: Site, first_install: Run) -> None:
    swappiness = Path("/proc/sys/vm/swappiness").read_text().strip()
    for server in site.servers[:3]:
        for path in (layout.SYSCTL_MACHINE, layout.TIMESYNCD_DROPIN, layout.RUNTIME_PIN):
            assert lab.exec(server.hostname, ["test", "-e", path]).returncode == 1, (server.hostname, path)
        # the per-namespace keys are the host's own: set there, absent from the machine's view
        assert lab.exec(server.hostname, ["sysctl", "-n", "net.ipv4.tcp_keepalive_time"]).stdout.strip() == "120"
    assert Path("/proc/sys/vm/swappiness").read_text().strip() == swappiness != "1"
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip() != "120"


def test_dry_run_shows_the_rule_diff_and_changes_nothing(lab: Lab, config: Config, first_install: Run) -> None:
    before = table_hash(lab, "app-01")
    changed = config.change(lambda b: b.setdefault("firewall", {}).update(
        open=[{"port": 9998, "role": "app", "allow_from": ["haproxy"], "service": "app-metrics"}]))
    buffer = io.StringIO()

    async def go() -> int:
        async with Engine(changed, console=Console(file=buffer, width=250), dry_run=True) as engine:
            await install_modules(engine, [MODULE])
            return engine.stats.changes

    would = asyncio.run(go())
    text = buffer.getvalue()
    assert would >= 2  # the file and the table, on app-01 only
    # the rule diff (the console turns tabs into spaces)
    assert re.search(r'^\+\s+tcp dport 9998 ip saddr @role_haproxy accept comment "app-metrics \(site\) from role '
                     r'haproxy"$', text, re.M), text
    assert "app-01" in text and "haproxy-01 /etc/keybuzz" not in text
    assert table_hash(lab, "app-01") == before
    assert lab.exec("app-01", ["grep", "-c", "9998", layout.FIREWALL_FILE]).stdout.strip() == "0"


@pytest.fixture
def listeners(lab: Lab) -> Iterator[None]:
    """Something listening on 5432 on the haproxy servers and one db server, as the services would."""
    hosts = ("haproxy-01", "haproxy-02", "db-master-01")
    pids = {host: lab.exec(host, ["sh", "-c", f"setsid python3 -c {shlex.quote(LISTENER)} 5432 </dev/null "
                                              ">/dev/null 2>&1 & echo $!"], check=True).stdout.strip()
            for host in hosts}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and connect(lab, "haproxy-01", lab.ip("db-master-01"), 5432) != "open":
        time.sleep(0.2)
    time.sleep(3)  # the load balancer's health checks mark the haproxy servers up (rise 2, inter 1 s)
    try:
        yield
    finally:
        for host, pid in pids.items():
            lab.exec(host, ["kill", pid])


def test_validate_the_matrix_and_the_ways_in(lab: Lab, site: Site, first_install: Run, listeners: None) -> None:
    started = time.monotonic()
    results = validate(site, MODULE)
    print(f"\nbase_os validate: {time.monotonic() - started:.1f} s")
    for result in results:
        print(f"  {'ok ' if result.ok else 'n/a' if not result.available else 'BAD'} {result.name}: {result.detail}")
    assert [r for r in results if r.available and not r.ok] == []
    names = {r.name: r for r in results}
    matrix = next(r for r in results if r.name.startswith("probe matrix"))
    assert "0 unexpected" in matrix.detail and int(matrix.name.split()[2]) > 500
    through = names[f"client -> lb-internal {lab.ip('lb-internal')}:5432 -> haproxy"]
    assert through.available and through.ok
    postgres = next(r for r in results if r.name.startswith("db tcp/5432"))
    assert "reached from db, haproxy, install" in postgres.detail and "app" in postgres.detail.split("dropped from")[1]
    not_applied = [r for r in results if r.detail.startswith("lab: not applied (machine-wide)")]
    assert {r.name.split(" (")[0] for r in not_applied} >= {"swap off", "machine-wide sysctls", "time synchronised"}
    assert names["password SSH login refused (no password method offered)"].ok
    # The examples, one by one: an app server cannot reach a database directly; HAProxy can; a client
    # reaches the service through the load balancer's VIP.
    assert connect(lab, "app-01", lab.ip("db-master-01"), 5432) == "timeout"
    assert connect(lab, "haproxy-01", lab.ip("db-master-01"), 5432) == "open"
    assert connect(lab, "app-01", lab.ip("lb-internal"), 5432) == "open"
    assert connect(lab, "redis-01", lab.ip("haproxy-01"), 5432) == "timeout"


def test_another_modules_checks_stay_green_behind_the_firewall(lab: Lab, site: Site, first_install: Run) -> None:
    redis = module_by_name("redis")
    run = install(site, redis)  # its own validate runs inside: Sentinels, HAProxy, the VIP, replication
    try:
        print(f"\nredis behind the firewall: {run.seconds:.1f} s")
        assert [r for r in validate(site, redis) if r.available and not r.ok] == []
        through = next(r for r in validate(site, MODULE) if r.name.endswith(f"{lab.ip('lb-internal')}:6379 -> haproxy"))
        assert through.available and through.ok, through.detail
    finally:
        cleanup(site, redis, purge_data=True)


def test_a_site_that_would_lock_the_installer_out_is_refused_before_any_change(
        lab: Lab, site: Site, config: Config, first_install: Run) -> None:
    before = state(lab, site)
    gateway = str(ipaddress.IPv4Network(lab.subnet).network_address + 1)  # the installer, as the hosts see it
    for edit, reason in ((lambda b: b.update(installer=[], ssh={"max_auth_tries": 4}), "drop the installer's SSH from"),
                         (lambda b: b.update(ssh={"allow_users": ["deploy"]}), "AllowUsers deploy does not let root@")):
        with pytest.raises(InstallFailed, match="refused before any change") as failure:
            install(config.change(edit), MODULE)
        assert reason in str(failure.value) and gateway in str(failure.value)
        assert state(lab, site) == before


def test_an_sshd_setting_overridden_by_a_match_block_is_refused_and_put_back(
        lab: Lab, site: Site, config: Config, first_install: Run) -> None:
    host = "db-slave-02"
    original = lab.exec(host, ["cat", layout.SSHD_CONFIG], check=True).stdout
    lab.exec(host, ["sh", "-c", f"printf 'Match User root\\n  PasswordAuthentication yes\\n' >> {layout.SSHD_CONFIG}"],
             check=True)
    dropin = lab.exec(host, ["cat", layout.SSHD_DROPIN], check=True).stdout
    try:
        with pytest.raises(InstallFailed, match="PasswordAuthentication is yes in force") as failure:
            install(config.change(lambda b: b.update(ssh={"max_auth_tries": 4})), MODULE)
        assert host in str(failure.value) and "previous files put back" in str(failure.value)
        assert lab.exec(host, ["cat", layout.SSHD_DROPIN], check=True).stdout == dropin  # MaxAuthTries 3 again
        others = lab.exec("db-slave-01", ["sh", "-c", f"{layout.SSHD} -T | grep -i '^maxauthtries'"]).stdout
        assert others.split() == ["maxauthtries", "4"]  # the servers without the override took the change
    finally:
        lab.exec(host, ["sh", "-c", f"cat > {layout.SSHD_CONFIG}"], input_text=original, check=True)
        config.restore()
    assert install(load_site(lab.site_dir), MODULE).stats.changes > 0  # back to MaxAuthTries 3 everywhere


def test_a_ruleset_no_fresh_login_confirms_is_rolled_back(lab: Lab, site: Site, config: Config,
                                                          first_install: Run) -> None:
    host = "haproxy-02"
    before = table_hash(lab, host)
    # An admin's own SSH rate limit, one new connection per hour: the run's connection gets in, its fresh
    # login after the new ruleset does not; open connections live on.
    blocker = ("table inet admin_block {\n chain input { type filter hook input priority 10; "
               "tcp dport 22 ct state new limit rate over 1/hour burst 1 packets drop; }\n}\n")
    lab.exec(host, ["nft", "-f", "-"], input_text=blocker, check=True)
    changed = config.change(lambda b: b.setdefault("firewall", {}).update(
        open=[{"port": 9101, "role": "haproxy", "allow_from": ["app"], "service": "probe"}]))
    try:
        started = time.monotonic()
        with pytest.raises(InstallFailed, match="let no fresh SSH login in; the previous one is back") as failure:
            install(changed, MODULE)
        print(f"\nrollback after {time.monotonic() - started:.1f} s")
        assert host in str(failure.value)
        assert table_hash(lab, host) == before  # the previous ruleset is loaded again
        assert table_hash(lab, "haproxy-01") == MODULE.firewalls(changed)["haproxy-01"].digest  # confirmed there
    finally:
        lab.exec(host, ["nft", "delete", "table", "inet", "admin_block"])
    run = install(changed, MODULE)
    assert table_hash(lab, host) == MODULE.firewalls(changed)[host].digest and run.stats.changes > 0
    config.restore()
    install(load_site(lab.site_dir), MODULE)


def test_lab_isolation_and_the_firewall_live_side_by_side(lab: Lab, site: Site, first_install: Run) -> None:
    digest = table_hash(lab, "redis-01")
    assert connect(lab, "redis-02", lab.ip("redis-01"), 6379) == "refused"  # allowed, nothing listens
    lab.isolate("redis-01", ["redis-02"])
    try:
        assert connect(lab, "redis-02", lab.ip("redis-01"), 6379) == "timeout"
        assert connect(lab, "haproxy-01", lab.ip("redis-01"), 6379) == "refused"
        assert table_hash(lab, "redis-01") == digest
    finally:
        lab.heal("redis-01")
    assert table_hash(lab, "redis-01") == digest
    assert connect(lab, "redis-02", lab.ip("redis-01"), 6379) == "refused"
    assert install(site, MODULE).stats.changes == 0  # healing touched nothing of ours


def test_cleanup_drops_the_table_and_keeps_the_resolver_and_sshd_hardening(lab: Lab, site: Site,
                                                                            first_install: Run) -> None:
    cleanup(site, MODULE, purge_data=False)
    for host in ("db-master-01", "app-01"):
        assert table_hash(lab, host) == ""
        assert lab.exec(host, ["test", "-e", layout.FIREWALL_FILE]).returncode == 1
        assert lab.exec(host, ["test", "-e", layout.SYSCTL_NET]).returncode == 1
        assert "nameserver 1.1.1.1" in lab.exec(host, ["cat", layout.RESOLV_CONF], check=True).stdout
        assert "PasswordAuthentication no" in lab.exec(host, ["cat", layout.SSHD_DROPIN], check=True).stdout
    assert connect(lab, "app-01", lab.ip("db-master-01"), 5432) == "refused"  # no firewall: the kernel answers
