"""Data volumes on the lab: real loop devices (the lab's stand-in for Hetzner volumes), real XFS,
PostgreSQL on them through the engine's install path.

In order: blank devices on one server are formatted with keybuzz's label, put in fstab by UUID and
mounted (the rest of the cluster keeps its volumes); a re-run changes nothing; every volume check is
green; a power-off and boot of a server mounts its volumes from fstab before Patroni starts again; an
unlabelled volume of an earlier keybuzz is adopted by its fstab line and labelled; a re-install over
kept volumes on servers whose fstab was lost (an OS re-install) mounts the XFS that carry keybuzz's
labels, formats nothing, and the database keeps its rows. Then, on a spare loop device, before
anything changes: ext4 with a file on it is refused and the file is intact; an XFS with another
label is refused; and a probe tool that fails (lsblk without sysfs) stops the run, the blank device
left blank.
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
from keybuzz.volumes.plan import FSTAB_MARK, label, volumes

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


def probed(device: str) -> dict[str, str]:
    """blkid's low-level probe of a device, read from this machine (not through keybuzz)."""
    out = subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


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
        uuid = probed(source)["UUID"]
        assert probed(source)["LABEL"] == label(use)
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


def test_an_unlabelled_volume_of_an_earlier_keybuzz_is_adopted_by_its_fstab_line(lab: Lab, site: Site,
                                                                                 first: str) -> None:
    wal = layout.host_paths(site).wal
    lab.exec(FRESH, ["xfs_io", "-c", "label -c", wal], check=True)  # what an earlier keybuzz's mkfs left: no label
    assert probed(loop_of(lab, FRESH, "postgres.wal")).get("LABEL", "") == ""
    again = install(site, MODULE)
    assert f"label {LabVolume(FRESH, 'postgres.wal').device} kb-post-wal" in again.output
    assert again.stats.changes == 1 and "format /dev/" not in again.output
    assert probed(loop_of(lab, FRESH, "postgres.wal"))["LABEL"] == "kb-post-wal"


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
    for server in site.with_role("db"):  # recognised by their labels: no fstab line was left to say so
        for use in ("postgres.data", "postgres.wal"):
            assert probed(loop_of(lab, server.hostname, use))["LABEL"] == label(use)
    rows = query(site, vip(site), layout.WRITE_PORT, "SELECT count(*) FROM keybuzz_volumes")
    assert rows == [(100,)]
    query(site, vip(site), layout.WRITE_PORT, "DROP TABLE keybuzz_volumes")


SPARE = "/dev/disk/by-id/scsi-0HC_Volume_kblab-spare"


@pytest.fixture
def spare(lab: Lab, tmp_path: Path) -> Iterator[str]:
    """A blank loop device that FRESH sees at SPARE (its path on this machine is yielded)."""
    backing = tmp_path / "spare.img"
    with open(backing, "wb") as file:
        file.truncate(320 << 20)  # sparse; XFS wants 300 MiB
    loop = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                          check=True).stdout.strip()
    try:
        lab.exec(FRESH, ["ln", "-sf", loop, SPARE], check=True)
        yield loop
    finally:
        lab.exec(FRESH, ["rm", "-f", SPARE])
        subprocess.run(["losetup", "--detach", loop], check=False)


def refused_on_spare(lab: Lab, site: Site) -> str:
    """install with FRESH's WAL pointed at SPARE: the pre-checks' message (fstab checked unchanged)."""

    def point_wal_at_spare(config: dict) -> None:
        for entry in config["volumes"]:
            if entry.get("server") == FRESH and entry["use"] == "postgres.wal":
                entry["device"] = SPARE

    fstab_before = fstab(lab, FRESH)
    with changed_site(lab.site_dir, point_wal_at_spare) as changed, pytest.raises(PrecheckFailed) as refused:
        install(changed, MODULE)
    assert fstab(lab, FRESH) == fstab_before
    print(f"\n{refused.value}")
    return str(refused.value)


def test_a_device_holding_ext4_is_refused_and_left_intact(lab: Lab, site: Site, first: str, spare: str,
                                                         tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        subprocess.run(["mkfs.ext4", "-q", spare], check=True)
        subprocess.run(["mount", spare, str(mnt)], check=True)
        (mnt / "orders.csv").write_text("1,keep me\n")
        subprocess.run(["umount", str(mnt)], check=True)
        message = refused_on_spare(lab, site)
        assert FRESH in message and SPARE in message and "ext4" in message and "nothing was changed" in message
        subprocess.run(["mount", "-o", "ro", spare, str(mnt)], check=True)
        assert (mnt / "orders.csv").read_text() == "1,keep me\n"
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_an_xfs_with_another_label_is_refused_and_left_as_it_was(lab: Lab, site: Site, first: str,
                                                                spare: str) -> None:
    subprocess.run(["mkfs.xfs", "-q", "-L", "backups", spare], check=True)
    before = probed(spare)
    message = refused_on_spare(lab, site)
    assert SPARE in message and "label 'backups'" in message and "keybuzz did not make for postgres.wal" in message
    assert f"xfs_admin -L kb-post-wal {SPARE}" in message  # how to proceed if it really is that volume
    assert probed(spare) == before


def test_a_failing_probe_tool_stops_the_run_and_the_blank_device_stays_blank(lab: Lab, site: Site, first: str,
                                                                            spare: str) -> None:
    lab.exec(FRESH, ["mount", "-t", "tmpfs", "none", "/sys/dev/block"], check=True)  # lsblk finds no sysfs entry
    try:
        message = refused_on_spare(lab, site)
    finally:
        lab.exec(FRESH, ["umount", "/sys/dev/block"], check=True)
    assert SPARE in message and "probing failed" in message and "`lsblk -rno NAME -- /dev/loop" in message
    assert "failed to get sysfs name" in message
    assert probed(spare) == {}  # blank still: read as blank from the tools' silence, it would have been formatted
