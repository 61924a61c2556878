"""Files a lab host is made of, parsed as their programs would read them."""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path

from keybuzz.haproxy import parse_config
from keybuzz.lab.hostfiles import HOST_INIT, containers_conf, daemon_json, hosts_file, sshd_config, storage_conf
from keybuzz.lab.lb import lb_haproxy_config

IP = ipaddress.IPv4Address("10.77.0.120")


def _sshd(text: str) -> dict[str, str]:
    pairs = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_sshd_is_key_only_on_the_host_ip_without_pam_or_dns() -> None:
    config = _sshd(sshd_config(IP))
    assert config["ListenAddress"] == str(IP)
    assert config["PasswordAuthentication"] == "no" and config["KbdInteractiveAuthentication"] == "no"
    assert config["PermitRootLogin"] == "prohibit-password"
    assert config["UsePAM"] == "no" and config["UseDNS"] == "no"
    assert config["HostKey"] == "/etc/ssh/ssh_host_ed25519_key"


def test_podman_settings_parse_as_toml() -> None:
    containers = tomllib.loads(containers_conf({"nofile": 20000, "nproc": 32768}))
    assert containers["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=32768:32768"]
    assert containers["engine"]["cgroup_manager"] == "cgroupfs"
    storage = tomllib.loads(storage_conf(Path("/srv/keybuzz-lab/images/store")))
    assert storage["storage"]["graphroot"] == "/var/lib/containers/storage"
    assert storage["storage"]["runroot"].startswith("/run/")
    assert storage["storage"]["options"]["additionalimagestores"] == ["/srv/keybuzz-lab/images/store"]


def test_hosts_file_lists_every_host() -> None:
    text = hosts_file([("db-master-01", IP, "db-master-01.lab.keybuzz.io"),
                       ("lb-internal", ipaddress.IPv4Address("10.77.0.10"), "")])
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line and not line.startswith("#")}
    assert rows[str(IP)] == ["db-master-01.lab.keybuzz.io", "db-master-01"]
    assert rows["10.77.0.10"] == ["lb-internal"] and rows["127.0.0.1"] == ["localhost"]


def test_host_init_mounts_private_dirs_and_ends_in_tini() -> None:
    lines = [line.strip() for line in HOST_INIT.splitlines()]
    assert any(line.startswith("mount -t overlay") for line in lines)
    for target in ("/run", "/tmp", "/dev/shm"):
        assert any(line.startswith("mount -t tmpfs") and line.endswith(" " + target) for line in lines)
    assert lines[-1].startswith("exec /usr/bin/tini")
    assert "cd /" in lines


def test_lb_config_forwards_every_port_to_every_target() -> None:
    targets = [("haproxy-01", ipaddress.IPv4Address("10.77.0.11")),
               ("haproxy-02", ipaddress.IPv4Address("10.77.0.12"))]
    sections = parse_config(lb_haproxy_config(ipaddress.IPv4Address("10.77.0.10"), [5432, 6379], targets) or "")
    assert "mode tcp" in sections["defaults"]
    assert any("on-marked-down shutdown-sessions" in line and "inter 1s" in line for line in sections["defaults"])
    for port in (5432, 6379):
        body = sections[f"listen lb-{port}"]
        assert f"bind 10.77.0.10:{port}" in body
        assert [line for line in body if line.startswith("server")] == [
            f"server haproxy-01 10.77.0.11:{port} check", f"server haproxy-02 10.77.0.12:{port} check"]


def test_lb_without_targets_runs_nothing() -> None:
    assert lb_haproxy_config(ipaddress.IPv4Address("10.77.0.20"), [3306], []) is None


def test_daemon_json_gives_each_host_its_own_engine_without_bridge_or_iptables() -> None:
    config = json.loads(daemon_json("/kblab-abc123-queue-01", {"nofile": 20000, "nproc": 32768}))
    assert config["cgroup-parent"] == "/kblab-abc123-queue-01"
    assert config["hosts"] == ["unix:///run/docker.sock"] and config["exec-root"] == "/run/docker"
    assert (config["bridge"], config["iptables"], config["ip-masq"]) == ("none", False, False)
    assert config["exec-opts"] == ["native.cgroupdriver=cgroupfs"] and config["storage-driver"] == "overlay2"
    assert config["default-ulimits"]["nofile"] == {"Name": "nofile", "Soft": 20000, "Hard": 20000}


def test_host_init_starts_dockerd_only_on_docker_hosts_after_the_mounts() -> None:
    lines = HOST_INIT.splitlines()
    start = next(i for i, line in enumerate(lines) if "/usr/sbin/dockerd" in line)
    assert lines[start - 1].strip() == 'if [ "$ENGINE" = docker ]; then'
    mounts = [i for i, line in enumerate(lines) if line.startswith("mount -a") or "tmpfs /run" in line]
    assert mounts and max(mounts) < start  # fstab mounts and a fresh /run (dockerd's exec-root) come first
