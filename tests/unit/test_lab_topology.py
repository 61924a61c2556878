"""Lab topologies and kernel names: pure data, checked without root."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from keybuzz.lab.errors import LabError
from keybuzz.lab.topology import Names, check_lab_dir, host_ip, lab_roles, parse_subnet, topology

SUBNET = ipaddress.IPv4Network("10.77.0.0/16")


def test_small_topology_keeps_the_seed_last_octets() -> None:
    hosts = {h.name: str(host_ip(SUBNET, h.offset)) for h in topology("small")}
    assert hosts["haproxy-01"] == "10.77.0.11" and hosts["haproxy-02"] == "10.77.0.12"
    assert [hosts[f"redis-0{i}"] for i in (1, 2, 3)] == ["10.77.0.123", "10.77.0.124", "10.77.0.125"]
    assert hosts["db-master-01"] == "10.77.0.120"
    assert hosts["lb-internal"] == "10.77.0.10" and hosts["lb-mariadb"] == "10.77.0.20"
    assert hosts["app-01"] == "10.77.0.200"
    assert [hosts[f"queue-0{i}"] for i in (1, 2, 3)] == ["10.77.0.126", "10.77.0.127", "10.77.0.128"]
    assert [hosts[f"minio-0{i}"] for i in (1, 2, 3)] == ["10.77.0.134", "10.77.0.131", "10.77.0.132"]
    assert [hosts[f"maria-0{i}"] for i in (1, 2, 3)] == ["10.77.0.170", "10.77.0.171", "10.77.0.172"]
    assert [hosts[f"proxysql-0{i}"] for i in (1, 2)] == ["10.77.0.173", "10.77.0.174"]
    assert len(hosts) == 24


def test_small_topology_roles_and_load_balancers() -> None:
    """The roles of the implemented modules whose images the lab can build: their hosts, nothing else."""
    specs = topology("small")
    roles = [role for h in specs for role in h.roles]
    assert {r: roles.count(r) for r in set(roles)} == {"haproxy": 2, "db": 3, "redis": 3, "queue": 3, "minio": 3,
                                                     "maria": 3, "proxysql": 2, "app": 1, "monitor": 2}
    assert lab_roles() == {"haproxy", "db", "redis", "queue", "minio", "maria", "proxysql", "monitor"}
    assert {h.name: h.lb for h in specs if h.lb} == {"lb-internal": "lb-internal", "lb-mariadb": "lb-mariadb"}


def test_seed_topology_drops_what_cannot_run_here() -> None:
    roles = {role for h in topology("seed") for role in h.roles}
    assert not roles & {"k3s-master", "k3s-worker", "install"}
    assert {"haproxy", "db", "redis", "minio", "maria", "proxysql", "monitor", "app"} <= roles


def test_plain_hosts_topology() -> None:
    specs = topology("hosts:50")
    assert len(specs) == 50 and len({h.offset for h in specs}) == 50
    assert str(host_ip(SUBNET, specs[0].offset)) == "10.77.1.1"
    assert all(h.roles == ("app",) and h.lb is None for h in specs)


@pytest.mark.parametrize("name", ["big", "hosts:0", "hosts:251", "hosts:x"])
def test_unknown_topology_is_refused(name: str) -> None:
    with pytest.raises(LabError, match="topology"):
        topology(name)


def test_names_fit_linux_limits_and_differ_per_folder() -> None:
    a, b = Names.for_dir(Path("/srv/keybuzz-lab/a")), Names.for_dir(Path("/srv/keybuzz-lab/b"))
    assert a.lab_id != b.lab_id
    assert len(a.bridge) <= 15 and len(a.veth(250)) <= 15
    assert a.netns("db-master-01").startswith(f"kb-{a.lab_id}-")


@pytest.mark.parametrize("folder", ["/var/lib/keybuzz-lab", "/etc/lab", "/tmp/lab", "/run/lab", "/opt"])
def test_lab_folder_outside_overlaid_dirs(folder: str) -> None:
    with pytest.raises(LabError, match="overlay or replace"):
        check_lab_dir(Path(folder))
    assert check_lab_dir(Path("/srv/keybuzz-lab/x")) == Path("/srv/keybuzz-lab/x")


@pytest.mark.parametrize("text", ["8.8.8.0/24", "10.77.0.0/28", "10.77.0.1/16", "nonsense"])
def test_bad_subnets_are_refused(text: str) -> None:
    with pytest.raises(LabError, match="subnet"):
        parse_subnet(text)


def test_host_offset_must_fit_the_subnet() -> None:
    with pytest.raises(LabError, match="too small"):
        host_ip(ipaddress.IPv4Network("10.77.0.0/23"), 600)


def test_roles_topology_keeps_those_servers_and_the_load_balancers_in_front_of_them() -> None:
    hosts = topology("roles:queue,haproxy")
    assert [h.name for h in hosts if not h.lb] == ["haproxy-01", "haproxy-02", "queue-01", "queue-02", "queue-03"]
    assert [h.lb for h in hosts if h.lb] == ["lb-internal"]  # lb-mariadb fronts proxysql: not asked for
    small = {h.name: h for h in topology("small")}
    assert all(small[h.name] == h for h in hosts)  # the same addresses as in the small lab


@pytest.mark.parametrize("name", ["roles:", "roles:queue,k3s-master", "roles:nosuch"])
def test_roles_topology_refuses_a_role_the_lab_does_not_run(name: str) -> None:
    with pytest.raises(LabError, match="not a role the lab runs"):
        topology(name)
