"""The lab itself: real hosts over SSH, private files, podman inside, faults, and a clean `down`."""

from __future__ import annotations

import ipaddress
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from listeners import lab_wildcard_listeners  # tests/lab is on sys.path

from keybuzz.lab import Lab, LabError, kernel
from keybuzz.lab.images import image_refs
from keybuzz.lab.topology import Names
from keybuzz.lint import lint
from keybuzz.registry import load_site

SCRATCH_DIR = Path(os.environ.get("KEYBUZZ_TEST_SCRATCH_LAB_DIR", "/srv/keybuzz-lab/pytest-scratch"))
SCRATCH_SUBNET = ipaddress.IPv4Network(os.environ.get("KEYBUZZ_TEST_SCRATCH_LAB_SUBNET", "10.177.0.0/16"))
KV_PORT = 7777


def ssh(lab: Lab, host: str, command: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = lab.ssh_argv(host, [command])
    if known_hosts is not None:
        argv = [a.replace(str(lab.known_hosts), str(known_hosts)) for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def tcp_probe(lab: Lab, client: str, ip: str, port: int, seconds: int = 3) -> int:
    """From a peer host: 0 connected, 1 refused (a reset), 124 silence until the timeout."""
    return lab.exec(client, ["timeout", str(seconds), "bash", "-c", f"echo > /dev/tcp/{ip}/{port}"]).returncode


def redis_ping(ip: str, port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection((ip, port), timeout=timeout) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(16)


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not true after {seconds} s")
        time.sleep(0.2)


@pytest.fixture
def kv(lab: Lab) -> Iterator[str]:
    """A redis container on redis-03, host network, restart policy always; removed afterwards."""
    host = "redis-03"
    argv = ["podman", "run", "-d", "--name", "lab-test-kv", "--network", "host", "--restart", "always",
            image_refs()["redis"], "redis-server", "--port", str(KV_PORT), "--bind", lab.ip(host), "--save", "",
            "--protected-mode", "no"]
    lab.exec(host, ["podman", "rm", "-f", "lab-test-kv"])
    lab.exec(host, argv, check=True)
    try:
        wait_for(lambda: redis_ping(lab.ip(host), KV_PORT) == b"+PONG\r\n", 10, "redis in a container answers")
        yield host
    finally:
        lab.restore()
        lab.exec(host, ["podman", "rm", "-f", "lab-test-kv"])


def test_every_host_answers_ssh_with_the_lab_key_and_strict_host_keys(lab: Lab) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(lab.hosts, pool.map(lambda h: ssh(lab, h, "hostname"), lab.hosts), strict=True))
    for host, result in results.items():
        assert result.returncode == 0, f"{host}: {result.stderr}"
        assert result.stdout.strip() == host


def test_an_unknown_host_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = ssh(lab, "db-master-01", "true", known_hosts=empty)
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_each_host_has_its_own_name_address_and_files(lab: Lab) -> None:
    for host in ("db-master-01", "db-slave-01", "app-01"):
        out = lab.exec(host, ["sh", "-c", "hostname; ip -o -4 addr show dev eth0; ip route; cat /etc/hosts"],
                       check=True).stdout
        assert out.splitlines()[0] == host
        assert f"inet {lab.ip(host)}/" in out
        assert "default" not in out, "a lab host must have no default route"
        assert all(f"{other.ip}\t" in out for other in lab.hosts.values()), "/etc/hosts lists every lab host"
    marker = "/etc/keybuzz-lab-test-marker"
    lab.exec("db-slave-01", ["sh", "-c", f"echo db-slave-01 > {marker}"], check=True)
    try:
        assert lab.exec("db-slave-01", ["cat", marker], check=True).stdout == "db-slave-01\n"
        assert lab.exec("db-master-01", ["cat", marker]).returncode != 0, "/etc leaked to another host"
        assert not Path(marker).exists(), "/etc leaked to the machine"
    finally:
        lab.exec("db-slave-01", ["rm", "-f", marker])
    pids = lab.exec("db-master-01", ["ps", "-e", "-o", "pid="], check=True).stdout.split()
    assert "1" in pids and len(pids) < 20, "a host sees only its own processes"


def test_the_site_describes_the_lab_and_lints_clean(lab: Lab) -> None:
    site = load_site(lab.site_dir)
    assert site.config.container_cli == "podman"
    assert site.config.network.cidr == lab.subnet
    servers = {s.hostname: str(s.private_ip) for s in site.servers}
    assert servers == {h.name: h.ip for h in lab.hosts.values() if h.lb is None}
    vips = {lb.name: str(lb.vip) for lb in site.config.load_balancers}
    assert vips == {"lb-internal": lab.ip("lb-internal"), "lb-mariadb": lab.ip("lb-mariadb")}
    assert Path(site.config.ssh.identity_file) == lab.key_path
    known = Path(site.config.ssh.known_hosts or "").read_text()
    assert all(h.ip + "," in known for h in lab.hosts.values())
    assert all(site.image(key) == ref for key, ref in image_refs().items())
    assert [f for f in lint(site) if f.severity == "error"] == []


def test_a_container_runs_with_host_network_and_its_restart_policy(lab: Lab, kv: str) -> None:
    assert redis_ping(lab.ip(kv), KV_PORT) == b"+PONG\r\n"  # reached from the machine over the bridge
    assert tcp_probe(lab, "redis-01", lab.ip(kv), KV_PORT) == 0
    lab.exec(kv, ["pkill", "-9", "-x", "redis-server"], check=True)
    wait_for(lambda: redis_ping(lab.ip(kv), KV_PORT) == b"+PONG\r\n", 15, "the restart policy brings redis back")


def test_poweroff_is_silence_and_boot_brings_the_container_back(lab: Lab, kv: str) -> None:
    lab.poweroff(kv)
    status = {r.name: r for r in lab.status(containers=False)}
    assert not status[kv].up and status[kv].processes == 0
    assert tcp_probe(lab, "redis-01", lab.ip(kv), 22) == 124, "a powered-off host must not answer at all"
    with pytest.raises(LabError, match="powered off"):
        lab.exec(kv, ["true"])
    started = lab.boot(kv)
    assert "lab-test-kv" in started
    wait_for(lambda: redis_ping(lab.ip(kv), KV_PORT) == b"+PONG\r\n", 15, "the container is back after boot")
    assert ssh(lab, kv, "hostname").stdout.strip() == kv


def test_crash_resets_and_boot_refuses_a_running_host(lab: Lab, kv: str) -> None:
    with pytest.raises(LabError, match="still has"):
        lab.boot(kv)
    lab.crash(kv)
    assert tcp_probe(lab, "redis-01", lab.ip(kv), 22) == 1, "a crashed host's kernel answers with a reset"
    lab.boot(kv)
    assert tcp_probe(lab, "redis-01", lab.ip(kv), 22) == 0


def test_partition_cuts_the_link_and_heal_restores_it(lab: Lab, kv: str) -> None:
    lab.partition(kv)
    try:
        assert tcp_probe(lab, "redis-01", lab.ip(kv), KV_PORT) == 124
        assert lab.exec(kv, ["podman", "ps", "--format", "{{.Names}}"], check=True).stdout.split() == ["lab-test-kv"]
    finally:
        lab.heal(kv)
    assert redis_ping(lab.ip(kv), KV_PORT) == b"+PONG\r\n"


def test_load_balancer_host_forwards_to_its_target_role(lab: Lab) -> None:
    port = 5672  # an lb-internal port; no module of this test session listens on it
    names = ("haproxy-01", "haproxy-02")
    for host in names:
        lab.exec(host, ["podman", "run", "-d", "--name", "lab-test-lb", "--network", "host", image_refs()["redis"],
                        "redis-server", "--port", str(port), "--bind", lab.ip(host), "--save", "",
                        "--protected-mode", "no"], check=True)
    try:
        vip = lab.ip("lb-internal")
        wait_for(lambda: redis_ping(vip, port) == b"+PONG\r\n", 10, "the VIP forwards to the haproxy hosts")
        lab.poweroff("haproxy-01")
        # fall 2 x (inter 1 s + check timeout 1 s): marked down within ~4 s, then every connection works.
        time.sleep(5)
        assert all(redis_ping(vip, port) == b"+PONG\r\n" for _ in range(6))
    finally:
        lab.restore()
        for host in names:
            lab.exec(host, ["podman", "rm", "-f", "lab-test-lb"])


def _lab_pids(names: Names) -> list[int]:
    table = kernel.netns_pids()
    return [pid for path in kernel.NETNS_DIR.glob(f"kb-{names.lab_id}-*") for pid in kernel.pids_in(path.name, table)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_up_after_a_half_failed_up_works_and_down_leaves_nothing(lab: Lab) -> None:
    scratch = Lab(SCRATCH_DIR)
    scratch.down()
    names = scratch.names
    blocker = names.netns("host-002")
    subprocess.run(["ip", "netns", "add", blocker], check=True)  # the second host cannot be created
    with pytest.raises(LabError, match="netns"):
        scratch.up("hosts:3", SCRATCH_SUBNET)
    assert kernel.link_exists(names.bridge), "the failed up got halfway (bridge made) before failing"

    scratch.up("hosts:3", SCRATCH_SUBNET)
    assert all(ssh(scratch, h, "hostname").stdout.strip() == h for h in scratch.hosts)
    scratch.poweroff("host-002")
    scratch.partition("host-003")
    again = scratch.up("hosts:3", SCRATCH_SUBNET)  # a complete lab is kept: `up` only boots and heals
    assert again.already_up and all(r.up and r.link_up for r in scratch.status(containers=False))
    scratch.exec("host-001", ["podman", "run", "-d", "--name", "sleeper", "--restart", "always", "--network", "host",
                              image_refs()["base"], "sleep", "600"], check=True)
    ids = scratch.exec("host-001", ["podman", "ps", "-q", "--no-trunc"], check=True).stdout.split()
    pids = _lab_pids(names)
    assert len(ids) == 1 and pids

    scratch.down()
    assert not list(kernel.NETNS_DIR.glob(f"kb-{names.lab_id}-*")), "network namespaces left"
    assert not kernel.links_with_prefix(f"kb{names.lab_id}h") and not kernel.link_exists(names.bridge)
    assert kernel.mounts_under(SCRATCH_DIR) == []
    assert [p for p in pids if _alive(p)] == [], "processes of the lab survive `down`"
    cgroups = Path("/sys/fs/cgroup")
    left = [*cgroups.glob(f"libpod_parent/libpod-{ids[0]}"), *cgroups.glob(f"*/libpod_parent/libpod-{ids[0]}")]
    assert left == [], "container cgroups left"
    assert not SCRATCH_DIR.exists()


# Listens on every interface until killed, in the three forms ss shows: TCP 0.0.0.0, UDP [::] (IPv6
# only) and a dual-stack TCP socket on "::" (`*`).
WILDCARD_LISTENER = """import socket, sys, time
port = int(sys.argv[1])
tcp = socket.socket(); tcp.bind(("0.0.0.0", port)); tcp.listen()
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); udp.bind(("::", port))
dual = socket.socket(socket.AF_INET6); dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
dual.bind(("::", port + 1)); dual.listen()
time.sleep(120)"""


def test_the_listener_check_sees_wildcard_listeners(lab: Lab) -> None:
    """The module lab tests assert that no host listens on a wildcard address: the check sees one, TCP and UDP."""
    pid = lab.exec("app-01", ["sh", "-c", f"setsid python3 -c {shlex.quote(WILDCARD_LISTENER)} 9977 </dev/null "
                                          ">/dev/null 2>&1 & echo $!"], check=True).stdout.strip()
    try:
        def all_three() -> list[str] | None:
            found = [x for x in lab_wildcard_listeners(lab) if ":997" in x]
            return found if len(found) >= 3 else None

        found = wait_for(all_three, 10, "the wildcard listeners are seen")
        assert sorted(x.split(" users:")[0] for x in found) == [
            "app-01: tcp *:9978", "app-01: tcp 0.0.0.0:9977", "app-01: udp [::]:9977"]
    finally:
        lab.exec("app-01", ["kill", pid])
