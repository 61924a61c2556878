"""Volumes, the pure part: keybuzz.yaml `volumes` checks (with their lines), what the device probe
says (a failed probe tool included), what keybuzz may do with a device (only a filesystem it made),
the label and the mkfs argv, the fstab line, and the mount-aware purge."""

from __future__ import annotations

import shlex
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


OURS = "blkid.TYPE=xfs\nblkid.UUID=u-1\nblkid.LABEL=kb-post-data\nsig=xfs\n"  # what keybuzz's mkfs leaves


def test_a_device_with_the_filesystem_is_mounted_never_formatted() -> None:
    found = state(OURS)
    assert device.decide(VOLUME, found) == device.Decision(format=False, mount=True)
    mounted = state(OURS + "mountedat=" + PGDATA +
                    "\npathmount=/dev/loop3 xfs rw,noatime,inode64\npathdir=1\npathempty=0\n"
                    f"fstab=UUID=u-1 {PGDATA} xfs noatime,nofail,x-keybuzz 0 0\n")
    assert device.decide(VOLUME, mounted) == device.Decision()  # a re-run: nothing to do
    relatime = state(OURS + "mountedat=" + PGDATA + "\npathmount=/dev/loop3 xfs rw,relatime\n")
    assert device.decide(VOLUME, relatime).remount_options == ("noatime",)


@pytest.mark.parametrize(("probe", "said"), [
    ("blkid.TYPE=ext4\nblkid.UUID=e-1\nsig=ext4\n", "holds a filesystem (ext4, UUID e-1, no label), not xfs"),
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
    elsewhere = device.decide(VOLUME, state(OURS + "mountedat=/mnt/old\n"))
    assert "is mounted at /mnt/old" in elsewhere.refusal
    other_mount = device.decide(VOLUME, state(OURS + "pathmount=/dev/sdz xfs rw\n"))
    assert "already has /dev/sdz (xfs) mounted" in other_mount.refusal
    hidden = device.decide(VOLUME, state("pathdir=1\npathempty=0\n"))
    assert "would hide that data" in hidden.refusal
    foreign_line = device.decide(VOLUME, state(f"{OURS}fstab=/dev/sdc {PGDATA} ext4 rw 0 0\n"))
    assert "already mounts something else" in foreign_line.refusal
    # keybuzz's own line of a volume replaced by a blank device: formatted, the line replaced
    replaced = device.decide(VOLUME, state(f"fstab=UUID=old {PGDATA} xfs noatime,nofail,x-keybuzz 0 0\n"))
    assert replaced == device.Decision(format=True, mount=True)


def test_an_xfs_keybuzz_did_not_make_is_refused_saying_what_it_is_and_how_to_label_it() -> None:
    foreign = device.decide(VOLUME, state("blkid.TYPE=xfs\nblkid.UUID=b-7\nblkid.LABEL=backups\nsig=xfs\n"))
    assert not (foreign.format or foreign.mount)
    for said in ("db-1", DEVICE, "(xfs, UUID b-7, label 'backups')", "keybuzz did not make for postgres.data",
                 "not labelled kb-post-data", f"`xfs_admin -L kb-post-data {DEVICE}`", "Nothing was changed"):
        assert said in foreign.refusal, said
    assert "no label" in device.decide(VOLUME, state("blkid.TYPE=xfs\nblkid.UUID=b-7\n")).refusal
    swapped = device.decide(VOLUME, state("blkid.TYPE=xfs\nblkid.UUID=w-1\nblkid.LABEL=kb-post-wal\n"))
    assert "are two devices swapped" in swapped.refusal
    by_hand = device.decide(VOLUME, state(f"blkid.TYPE=xfs\nblkid.UUID=b-7\nmountedat={PGDATA}\n"
                                          "pathmount=/dev/loop3 xfs rw,noatime\n"))
    assert f"`xfs_io -c 'label -s kb-post-data' {PGDATA}`" in by_hand.refusal  # mounted: labelled online
    for line in (f"UUID=b-7 {PGDATA} xfs defaults 0 0",  # an operator's line is no record of keybuzz's
                 f"UUID=b-7 {PGDATA} xfs defaults 0 0 # x-keybuzz"):  # nor is the mark in a comment
        assert "did not make" in device.decide(VOLUME, state(f"blkid.TYPE=xfs\nblkid.UUID=b-7\nfstab={line}\n")).refusal


def test_an_unlabelled_xfs_of_an_earlier_keybuzz_is_adopted_by_its_fstab_line_and_labelled() -> None:
    legacy = f"blkid.TYPE=xfs\nblkid.UUID=u-9\nsig=xfs\nfstab={plan.fstab_line(VOLUME, 'u-9')}\n"
    assert device.decide(VOLUME, state(legacy)) == device.Decision(mount=True, label=True)
    running = legacy + f"mountedat={PGDATA}\npathmount=/dev/loop3 xfs rw,noatime\npathdir=1\npathempty=0\n"
    assert device.decide(VOLUME, state(running)) == device.Decision(label=True)
    relabelled = legacy + "blkid.LABEL=pgdata\n"  # the operator's own label on keybuzz's volume: kept
    assert device.decide(VOLUME, state(relabelled)) == device.Decision(mount=True)


def test_a_failed_probe_tool_stops_the_run_instead_of_reading_as_blank() -> None:
    failed = state("fail=`lsblk -rno NAME -- /dev/loop3` exited 32: lsblk: /dev/loop3: failed to get sysfs name: "
                   "No such file or directory \npathdir=1\n")
    assert failed.blank  # what the other tools said: nothing
    decision = device.decide(VOLUME, failed)
    assert not (decision.format or decision.mount)
    for said in ("db-1", DEVICE, "probing failed", "`lsblk -rno NAME -- /dev/loop3` exited 32",
                 "failed to get sysfs name", "Nothing was changed"):
        assert said in decision.refusal, said


def ran(ok: str, *argv: str) -> str:
    """The probe's `ran` helper on real tools: its `fail=` line, or the tool's output."""
    script = f't=$(mktemp -d)\n{device._RAN}\nran {shlex.quote(ok)} {shlex.join(argv)} && cat "$t/out"\nrm -rf "$t"\n'
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_probe_tools_that_find_nothing_are_told_from_tools_that_fail(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    assert ran("2", "blkid", "-p", "-o", "export", "--", str(blank)) == ""  # exit 2: nothing found
    assert ran("", "wipefs", "--no-act", "--noheadings", "--output", "TYPE", "--", str(blank)) == ""
    assert ran("1", "findmnt", "-rn", "--mountpoint", str(tmp_path)) == ""  # exit 1: not a mount point
    missing = ran("", "wipefs", "--no-act", "--", str(tmp_path / "gone"))
    assert missing.startswith(f"fail=`wipefs --no-act -- {tmp_path / 'gone'}` exited 1: wipefs: error: ")
    unreadable = ran("1", "findmnt", "-rn", "--tab-file", str(tmp_path / "gone"))  # exit 1 and an error
    assert unreadable.startswith("fail=`findmnt") and "No such file or directory" in unreadable
    found = device.parse_probe("real=/dev/loop3\nblock=1\n" + missing + unreadable)
    assert len(found.failures) == 2 and "probing failed" in device.decide(VOLUME, found).refusal


def test_the_label_fits_xfs_and_tells_every_declared_data_path_apart(seed_site: Path) -> None:
    labels = {use: plan.label(use) for use in plan.declared_paths(load_site(seed_site), MODULES)}
    assert labels["postgres.data"] == "kb-post-data" and labels["postgres.wal"] == "kb-post-wal"
    assert len(set(labels.values())) == len(labels) and all(len(label) <= 12 for label in labels.values())


def test_mkfs_formats_by_the_declared_path_with_the_label(tmp_path: Path) -> None:
    image = tmp_path / "volume.img"
    with open(image, "wb") as file:
        file.truncate(300 << 20)  # sparse; XFS wants 300 MiB
    by_id = tmp_path / "scsi-0HC_Volume_1001"
    by_id.symlink_to(image)
    volume = Volume("db-1", "postgres.data", PGDATA, "PGDATA", str(by_id), "xfs", ("noatime",), 10)
    argv = device.format_argv(volume)
    assert argv[-2:] == ["--", str(by_id)] and "-f" not in argv  # the stable path, never the kernel name
    subprocess.run(argv, check=True, capture_output=True)
    probed = subprocess.run(["blkid", "-p", "-o", "export", str(image)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert "TYPE=xfs" in probed and "LABEL=kb-post-data" in probed
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode != 0 and "existing filesystem" in again.stderr  # no -f: mkfs refuses by itself


def test_mkfs_is_refused_when_the_device_changed_since_the_probe() -> None:
    before = state("pathdir=1\n")
    assert device.recheck(VOLUME, before, state("pathdir=1\n")) == ""
    renamed = device.parse_probe("real=/dev/loop7\nblock=1\npathdir=1\n")
    assert "now resolves to /dev/loop7, not /dev/loop3" in device.recheck(VOLUME, before, renamed)
    written = device.recheck(VOLUME, before, state("blkid.TYPE=ext4\nblkid.UUID=e-2\n"))
    assert "holds a filesystem (ext4" in written
    formatted_meanwhile = device.recheck(VOLUME, before, state(OURS))
    assert "now holds a filesystem (xfs" in formatted_meanwhile and "was blank" in formatted_meanwhile
    failing = device.recheck(VOLUME, before, state("fail=`wipefs` exited 1: I/O error\n"))
    assert "probing failed" in failing


def test_labelling_happens_only_where_the_path_is_mounted_from_the_device(tmp_path: Path) -> None:
    volume = Volume("h", "postgres.data", str(tmp_path), "PGDATA", DEVICE, "xfs", ("noatime",), 10)
    out = subprocess.run(["sh", "-c", device.label_script(volume, "/dev/loop3")], capture_output=True, text=True)
    assert out.returncode == 1 and f"{tmp_path} is not mounted from /dev/loop3" in out.stderr


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
    actions = {a.target: a for a in removal_actions(p, probed, ContainerCli("podman"), "postgres", purge_data=True,
                                                    module_dirs=("/opt/keybuzz/postgres",))}
    assert actions[PGDATA].command == f"find {PGDATA} -xdev -mindepth 1 -delete"
    assert actions["/opt/keybuzz/postgres/raft"].command == "rm -rf -- /opt/keybuzz/postgres/raft"
    assert "/opt/keybuzz/postgres" not in actions  # holds the mount point
    assert "#M" in probe_script([], None, mounts=True) and "#M" not in probe_script([], None)
