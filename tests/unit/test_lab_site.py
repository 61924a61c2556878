"""The site a lab writes: loadable, lint-clean, pointing at the lab's hosts, key and images."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from keybuzz.lab.images import image_refs
from keybuzz.lab.site import write_lab_site
from keybuzz.lab.topology import topology
from keybuzz.lint import lint
from keybuzz.registry import MODULES, load_site
from keybuzz.volumes import plan as volume_plan

SUBNET = ipaddress.IPv4Network("10.78.0.0/16")


def _write(tmp_path: Path, name: str = "small") -> Path:
    root = tmp_path / "site"
    write_lab_site(root, SUBNET, topology(name), image_refs(), tmp_path / "id_ed25519", tmp_path / "known_hosts")
    return root


def test_lab_site_loads_and_lints_without_errors(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path))
    assert [f for f in lint(site) if f.severity == "error"] == []
    assert site.config.container_cli == "podman" and site.config.network.cidr == SUBNET
    assert {lb.name: str(lb.vip) for lb in site.config.load_balancers} == {
        "lb-internal": "10.78.0.10", "lb-mariadb": "10.78.0.20"}
    assert site.config.ssh.identity_file == str(tmp_path / "id_ed25519")
    assert site.config.ssh.known_hosts == str(tmp_path / "known_hosts")
    assert len(site.servers) == 22 and {str(s.private_ip) for s in site.with_role("haproxy")} == {
        "10.78.0.11", "10.78.0.12"}


def test_lab_versions_point_at_lab_images_and_say_why_others_do_not(tmp_path: Path) -> None:
    root = _write(tmp_path)
    versions = yaml.safe_load((root / "versions.yaml").read_text())["images"]
    refs = image_refs()
    for key in ("patroni", "pgbouncer", "redis", "haproxy", "base"):
        assert versions[key] == refs[key]
    assert versions["etcd"] == refs["patroni"]
    lines = {line.split(":")[0].strip(): line for line in (root / "versions.yaml").read_text().splitlines()}
    assert "not in Debian" in lines["minio"] and "not in Debian" in lines["proxysql"]
    assert "lab image" in lines["redis"]


def test_plain_hosts_site_is_valid(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, "hosts:5"))
    assert [s.hostname for s in site.servers] == [f"host-00{i}" for i in range(1, 6)]
    assert site.config.load_balancers == []
    assert [f for f in lint(site) if f.severity == "error"] == []


def test_the_lab_site_puts_postgres_and_mariadb_on_the_hosts_own_volumes(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path))
    found = volume_plan.volumes(site, MODULES)
    by_use: dict[str, list[str]] = {}
    for volume in found:
        by_use.setdefault(volume.use, []).append(volume.host)
    assert by_use == {"postgres.data": ["db-master-01", "db-slave-01", "db-slave-02"],
                      "postgres.wal": ["db-master-01", "db-slave-01", "db-slave-02"],
                      "mariadb.data": ["maria-01", "maria-02", "maria-03"]}
    devices = [v.device for v in found]
    assert len(set(devices)) == len(devices)
    assert all(d.startswith("/dev/disk/by-id/scsi-0HC_Volume_kblab-") for d in devices)
    assert {v.device for v in found if v.host == "maria-01"} == {
        "/dev/disk/by-id/scsi-0HC_Volume_kblab-maria-01-mariadb-data"}
