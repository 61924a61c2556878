"""Data volumes on the lab: real loop devices (the lab's stand-in for Hetzner volumes), real XFS,
PostgreSQL on them through the engine's install path.

In order: blank devices on one server are formatted, put in fstab by UUID and mounted (the rest
of the cluster keeps its volumes); a re-run changes nothing; every volume check is green; a
power-off and boot of a server mounts its volumes from fstab before Patroni starts again; a
re-install over kept volumes on servers whose fstab was lost (an OS re-install) mounts the
existing XFS, formats nothing, and the database keeps its rows; a device holding ext4 with a
file on it is refused before anything changes, and the file is intact.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_runs import changed_site, cleanup, install, validate  # tests/lab is on sys.path

from keybuzz.engine.install import PrecheckFailed, failed_checks
from keybuzz.lab import Lab
from keybuzz.lab.volumes import LabVolume
from keybuzz.modules.postgres import MODULE, layout
from keybuzz.modules.postgres.client import query
from keybuzz.registry import load_site
from keybuzz.site import Site
from keybuzz.volumes.plan import FSTAB_MARK, volumes

pytestmark = pytest.mark.lab
FRESH = "db-slave-02"  # its devices are wiped: a server that just got new volumes


def mounted(lab: Lab, host: str, path: str) -> str:
    """`source fstype options` of what is mounted at path in the host, or ""."""
    return lab.exec(host, ["findmnt", "-rn", "-o", "SOURCE,FSTYPE,OPTIONS", "--mountpoint", path]).stdout.strip()


def fstab(lab: Lab, host: str) -> list[str]:
    return [line for line in lab.exec(host, ["cat", "/etc/fstab"], check=True).stdout.splitlines()
            if FSTAB_MARK in line]


def forget_volumes(lab: Lab, site: Site, host: str) -> None:
    """What an OS re-install leaves: the volumes attached, nothing mounted, no fstab line."""
    for volume in volumes(site, [MODULE]):
        if volume.host == host:
            lab.exec(host, ["umount", volume.path])
    lab.exec(host, ["sed", "-i", f"/{FSTAB_MARK}/d", "/etc/fstab"], check=True)


def loop_of(lab: Lab, host: str, use: str) -> str:
    return lab.exec(host, ["readlink", "-f", LabVolume(host, use).device], check=True).stdout.strip()


def vip(site: Site) -> str:
    address = site.config.vip_for(layout.WRITE_PORT)
    assert address is not None
    return address


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    loaded = load_site(Path(lab.site_dir))
    cleanup(loaded, MODULE, purge_data=True)
    forget_volumes(lab, loaded, FRESH)
    for use in ("postgres.data", "postgres.wal"):
        subprocess.run(["wipefs", "--all", "--quiet", loop_of(lab, FRESH, use)], check=True)
    yield loaded
    lab.restore()
    cleanup(loaded, MODULE, purge_data=True)


@pytest.fixture(scope="module")
def first(site: Site) -> str:
    run = install(site, MODULE)
    print(f"\npostgres with 2 new volumes on {FRESH}: {run.seconds:.1f} s, {run.stats.changes} changes")
    return run.output


def test_blank_devices_are_formatted_then_mounted_by_uuid(lab: Lab, site: Site, first: str) -> None:
    for use, path in (("postgres.data", layout.host_paths(site).data), ("postgres.wal", layout.host_paths(site).wal)):
        device = LabVolume(FRESH, use).device
        assert f"format {device}" in first
        source, fstype, options = mounted(lab, FRESH, path).split()
        assert (source, fstype) == (loop_of(lab, FRESH, use), "xfs") and "noatime" in options.split(",")
        uuid = subprocess.run(["blkid", "-s", "UUID", "-o", "value", source], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert f"UUID={uuid} {path} xfs noatime,nofail,{FSTAB_MARK} 0 0" in fstab(lab, FRESH)
        owner = lab.exec(FRESH, ["stat", "-c", "%U %a", path], check=True).stdout.split()
        assert owner[0] != "root" and owner[1] == "700"  # the module's owner and mode, set by converge


def test_rerun_changes_nothing_and_every_volume_check_is_green(site: Site, first: str) -> None:
    again = install(site, MODULE)
    print(f"\nre-run: {again.seconds:.1f} s")
    assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output
    checks = [c for c in validate(site, MODULE) if c.name.startswith("volume ")]
    assert len(checks) == 6 and [c for c in checks if not c.ok] == []
    print("\n" + "\n".join(f"{c.name}: {c.detail}" for c in checks))


def test_a_rebooted_server_mounts_its_volumes_before_patroni_starts(lab: Lab, site: Site, first: str) -> None:
    query(site, vip(site), layout.WRITE_PORT, "CREATE TABLE IF NOT EXISTS keybuzz_volumes (id int PRIMARY KEY)")
    query(site, vip(site), layout.WRITE_PORT, "INSERT INTO keybuzz_volumes SELECT generate_series(1, 100)")
    lab.poweroff(FRESH)
    assert mounted(lab, "db-master-01", layout.host_paths(site).data)  # another server: still mounted
    booted = time.monotonic()
    started = lab.boot(FRESH)
    assert "patroni" in started
    for path in (layout.host_paths(site).data, layout.host_paths(site).wal):
        assert mounted(lab, FRESH, path).split()[1] == "xfs"
    deadline = time.monotonic() + 120
    while (bad := failed_checks(validate(site, MODULE))) and time.monotonic() < deadline:
        time.sleep(2)
    assert bad == []
    print(f"\n{FRESH} booted, volumes mounted from fstab, every check green {time.monotonic() - booted:.1f} s later")


def test_reinstall_over_kept_volumes_mounts_them_and_keeps_the_rows(lab: Lab, site: Site, first: str) -> None:
    cleanup(site, MODULE, purge_data=False)
    for server in site.with_role("db"):
        forget_volumes(lab, site, server.hostname)
        assert not mounted(lab, server.hostname, layout.host_paths(site).data)
    preview = install(site, MODULE, dry_run=True)
    assert preview.stats.changes >= 12 and "format /dev/" not in preview.output  # 6 fstab lines, 6 mounts at least
    assert not mounted(lab, FRESH, layout.host_paths(site).data)  # a dry-run changes nothing
    again = install(site, MODULE)
    print(f"\nre-install over kept volumes, fstab lost on every db server: {again.seconds:.1f} s")
    assert "format /dev/" not in again.output and again.output.count(" at /opt/keybuzz/postgres/") >= 6
    rows = query(site, vip(site), layout.WRITE_PORT, "SELECT count(*) FROM keybuzz_volumes")
    assert rows == [(100,)]
    query(site, vip(site), layout.WRITE_PORT, "DROP TABLE keybuzz_volumes")


def test_a_device_holding_ext4_is_refused_and_left_intact(lab: Lab, site: Site, first: str,
                                                         tmp_path: Path) -> None:
    backing = tmp_path / "foreign.img"
    with open(backing, "wb") as file:
        file.truncate(64 << 20)
    loop = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                          check=True).stdout.strip()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        subprocess.run(["mkfs.ext4", "-q", loop], check=True)
        subprocess.run(["mount", loop, str(mnt)], check=True)
        (mnt / "orders.csv").write_text("1,keep me\n")
        subprocess.run(["umount", str(mnt)], check=True)
        spare = "/dev/disk/by-id/scsi-0HC_Volume_kblab-foreign"
        lab.exec(FRESH, ["ln", "-sf", loop, spare], check=True)

        def point_wal_at_spare(config: dict) -> None:
            for entry in config["volumes"]:
                if entry.get("server") == FRESH and entry["use"] == "postgres.wal":
                    entry["device"] = spare

        fstab_before = fstab(lab, FRESH)
        with changed_site(lab.site_dir, point_wal_at_spare) as changed, pytest.raises(PrecheckFailed) as refused:
            install(changed, MODULE)
        message = str(refused.value)
        print(f"\n{message}")
        assert FRESH in message and spare in message and "ext4" in message and "nothing was changed" in message
        assert fstab(lab, FRESH) == fstab_before
        subprocess.run(["mount", "-o", "ro", loop, str(mnt)], check=True)
        assert (mnt / "orders.csv").read_text() == "1,keep me\n"
        subprocess.run(["umount", str(mnt)], check=True)
    finally:
        lab.exec(FRESH, ["rm", "-f", "/dev/disk/by-id/scsi-0HC_Volume_kblab-foreign"])
        subprocess.run(["umount", str(mnt)], capture_output=True)
        subprocess.run(["losetup", "--detach", loop], check=False)
