"""Volumes, the pure part: keybuzz.yaml `volumes` checks (with their lines), what the device probe
says, what keybuzz may do with a device, the fstab line, and the mount-aware purge."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from keybuzz.containers import ContainerCli
from keybuzz.errors import InputErrors
from keybuzz.registry import MODULES, load_site
from keybuzz.remote.actions import removal_actions
from keybuzz.remote.probe import PathState, parse_probe, probe_script
from keybuzz.render import DirSpec, HostPlan
from keybuzz.volumes import device, plan
from keybuzz.volumes.plan import Volume

DEVICE = "/dev/disk/by-id/scsi-0HC_Volume_1001"
PGDATA = "/opt/keybuzz/postgres/data"


def with_volumes(seed_site: Path, entries: list[dict[str, object]]) -> Path:
    path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(path.read_text())
    config["volumes"] = entries
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load_errors(seed_site: Path) -> list[str]:
    with pytest.raises(InputErrors) as caught:
        load_site(seed_site)
    return [str(e) for e in caught.value.errors]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def test_a_volume_per_server_and_per_role_reaches_the_modules_paths(seed_site: Path) -> None:
    with_volumes(seed_site, [{"role": "db", "use": "postgres.data", "device": "/dev/disk/by-path/pci-0-scsi-0:0:0:1"},
                             {"server": "maria-01", "use": "mariadb.data", "device": DEVICE}])
    site = load_site(seed_site)
    found = plan.volumes(site, MODULES)
    assert sorted(v.host for v in found if v.use == "postgres.data") == ["db-master-01", "db-slave-01", "db-slave-02"]
    maria = next(v for v in found if v.use == "mariadb.data")
    assert (maria.host, maria.path, maria.filesystem, maria.options) == (
        "maria-01", "/opt/keybuzz/mariadb/data", "xfs", ("noatime",))


def test_bare_kernel_device_names_are_refused_with_the_stable_names_to_use(seed_site: Path) -> None:
    config = with_volumes(seed_site, [{"server": "db-master-01", "use": "postgres.data", "device": "/dev/sdb"}])
    errors = load_errors(seed_site)
    assert len(errors) == 1 and "is not a stable device path" in errors[0] and "/dev/disk/by-id/" in errors[0]
    assert f"keybuzz.yaml:{line_of(config, '/dev/sdb')}:" in errors[0]


def test_every_volume_mistake_is_reported_at_once_with_its_line(seed_site: Path) -> None:
    config = with_volumes(seed_site, [
        {"server": "db-master-01", "use": "postgres.dta", "device": DEVICE},  # typo
        {"server": "db-nope", "use": "postgres.data", "device": DEVICE},  # unknown server
        {"server": "redis-01", "use": "postgres.data", "device": DEVICE},  # server without the role
        {"server": "db-slave-01", "use": "postgres.data", "device": DEVICE},
        {"server": "db-slave-01", "use": "postgres.data", "device": DEVICE + "9"},  # data path twice
        {"server": "db-slave-01", "use": "postgres.wal", "device": DEVICE},  # device twice
    ])
    errors = load_errors(seed_site)
    text = "\n".join(errors)
    assert len(errors) == 5, text
    assert "'postgres.dta' is no module's data path" in text and "postgres.data" in text and "mariadb.data" in text
    assert "server 'db-nope' is not in servers.tsv" in text
    assert "redis-01 has no role db" in text
    assert "postgres.data on db-slave-01 is already given by volumes[3]" in text
    assert f"device {DEVICE} on db-slave-01 is already given by volumes[3]" in text
    lines = [int(e.split(":")[1]) for e in errors]
    assert lines[0] == line_of(config, "postgres.dta") and lines[1] == line_of(config, "db-nope")
    assert lines[4] == line_of(config, DEVICE) + 5 * 3  # the 6th entry's device line (3 lines per entry)


def test_a_volume_names_one_server_or_one_role(seed_site: Path) -> None:
    with_volumes(seed_site, [{"role": "db", "server": "db-slave-01", "use": "postgres.wal", "device": DEVICE}])
    errors = load_errors(seed_site)
    assert len(errors) == 1 and "exactly one of server (a hostname) or role" in errors[0]


def test_the_fstab_line_names_the_uuid_and_parses_as_fstab() -> None:
    volume = Volume("db-1", "postgres.data", PGDATA, "PGDATA", DEVICE, "xfs", ("noatime",), 10)
    line = plan.fstab_line(volume, "b2a3a87c-4e15-485f-8e28-3239a869ee13")
    source, target, fstype, options, dump, passno = line.split()
    assert (source, target, fstype, dump, passno) == (
        "UUID=b2a3a87c-4e15-485f-8e28-3239a869ee13", PGDATA, "xfs", "0", "0")
    assert options.split(",") == ["noatime", "nofail", "x-keybuzz"]
    import re
    assert re.match(plan.fstab_match(volume), f"UUID=other {PGDATA} xfs defaults 0 0")
    assert not re.match(plan.fstab_match(volume), f"UUID=other {PGDATA}2 xfs defaults 0 0")
    listing = subprocess.run(["findmnt", "--tab-file", "/dev/stdin", "-rn", "-o", "TARGET,FSTYPE,OPTIONS"],
                             input=line + "\n", capture_output=True, text=True, check=True).stdout.split()
    assert listing == [PGDATA, "xfs", "noatime,nofail,x-keybuzz"]


VOLUME = Volume("db-1", "postgres.data", PGDATA, "PGDATA", DEVICE, "xfs", ("noatime",), 10)


def state(output: str) -> device.DeviceState:
    return device.parse_probe("real=/dev/loop3\nblock=1\n" + output)


def test_a_blank_device_is_formatted_and_mounted() -> None:
    decision = device.decide(VOLUME, state("pathdir=1\n"))
    assert decision == device.Decision(format=True, mount=True)


def test_a_device_with_the_filesystem_is_mounted_never_formatted() -> None:
    found = state("blkid.TYPE=xfs\nblkid.UUID=u-1\nsig=xfs\n")
    assert device.decide(VOLUME, found) == device.Decision(format=False, mount=True)
    mounted = state("blkid.TYPE=xfs\nblkid.UUID=u-1\nsig=xfs\nmountedat=" + PGDATA +
                    "\npathmount=/dev/loop3 xfs rw,noatime,inode64\npathdir=1\npathempty=0\n"
                    f"fstab=UUID=u-1 {PGDATA} xfs noatime,nofail,x-keybuzz 0 0\n")
    assert device.decide(VOLUME, mounted) == device.Decision()  # a re-run: nothing to do
    relatime = state("blkid.TYPE=xfs\nblkid.UUID=u-1\nmountedat=" + PGDATA + "\npathmount=/dev/loop3 xfs rw,relatime\n")
    assert device.decide(VOLUME, relatime).remount_options == ("noatime",)


@pytest.mark.parametrize(("probe", "said"), [
    ("blkid.TYPE=ext4\nblkid.UUID=e-1\nsig=ext4\n", "holds a filesystem (ext4, UUID e-1), not xfs"),
    ("blkid.PTTYPE=gpt\nsig=PMBR\nsig=gpt\n", "a gpt partition table"),
    ("part=loop3p1\n", "partition(s) loop3p1"),
    ("sig=LVM2_member\n", "signature(s) LVM2_member"),
])
def test_anything_else_on_the_device_is_refused_naming_host_device_and_what(probe: str, said: str) -> None:
    decision = device.decide(VOLUME, state(probe))
    assert not decision.format and not decision.mount
    assert said in decision.refusal and "db-1" in decision.refusal and DEVICE in decision.refusal
    assert "wipefs --all /dev/loop3" in decision.refusal  # the operator types the device, keybuzz never does


def test_other_refusals_protect_data_in_place() -> None:
    missing = device.decide(VOLUME, device.parse_probe("real=/dev/disk/by-id/x\n"))
    assert "is not a block device" in missing.refusal and "attached" in missing.refusal
    elsewhere = device.decide(VOLUME, state("blkid.TYPE=xfs\nmountedat=/mnt/old\n"))
    assert "is mounted at /mnt/old" in elsewhere.refusal
    other_mount = device.decide(VOLUME, state("blkid.TYPE=xfs\npathmount=/dev/sdz xfs rw\n"))
    assert "already has /dev/sdz (xfs) mounted" in other_mount.refusal
    hidden = device.decide(VOLUME, state("pathdir=1\npathempty=0\n"))
    assert "would hide that data" in hidden.refusal
    foreign_line = device.decide(VOLUME, state(f"blkid.TYPE=xfs\nblkid.UUID=new\n"
                                               f"fstab=/dev/sdc {PGDATA} ext4 rw 0 0\n"))
    assert "already mounts something else" in foreign_line.refusal
    # keybuzz's own line of a volume replaced by a blank device: formatted, the line replaced
    replaced = device.decide(VOLUME, state(f"fstab=UUID=old {PGDATA} xfs noatime,nofail,x-keybuzz 0 0\n"))
    assert replaced == device.Decision(format=True, mount=True)


def test_the_probe_script_reads_a_real_folder_without_a_device(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("16\n")
    volume = Volume("h", "postgres.data", str(data), "PGDATA", str(tmp_path / "no-such-device"), "xfs",
                    ("noatime",), 10)
    out = subprocess.run(["sh", "-c", device.probe_script(volume)], capture_output=True, text=True, check=True)
    found = device.parse_probe(out.stdout)
    assert (found.block, found.path_exists, found.path_empty) == (False, True, False)
    assert "is not a block device" in device.decide(volume, found).refusal


def test_purge_empties_a_mounted_volume_and_keeps_the_folders_holding_it() -> None:
    p = HostPlan("h", [DirSpec("/opt/keybuzz/postgres"), DirSpec(PGDATA, data=True),
                       DirSpec("/opt/keybuzz/postgres/raft", data=True)], [], [])
    probed = parse_probe(f"#M\n/\n/opt/keybuzz\n{PGDATA}\n")
    probed.paths = {d.path: PathState("directory", 0o755, "root:root", "0:0") for d in p.directories}
    actions = {a.target: a for a in removal_actions(p, probed, ContainerCli("podman"), "postgres", purge_data=True)}
    assert actions[PGDATA].command == f"find {PGDATA} -xdev -mindepth 1 -delete"
    assert actions["/opt/keybuzz/postgres/raft"].command == "rm -rf -- /opt/keybuzz/postgres/raft"
    assert "/opt/keybuzz/postgres" not in actions  # holds the mount point
    assert "#M" in probe_script([], None, mounts=True) and "#M" not in probe_script([], None)
