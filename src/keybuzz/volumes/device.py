"""What is on a volume's device and at its mount point, and what keybuzz may do about it. Pure.

The one rule: keybuzz formats only a device that holds nothing at all (no filesystem, no partition
table, no signature of any kind, no partition), and mounts only a filesystem it made for that data
path: labelled with the path's label (plan.label) or, for volumes of an earlier keybuzz that wrote
no label, named by UUID in keybuzz's own fstab line for the path. Anything else stops the run,
naming host, device and what was found; there is no flag to format over it. A probe tool that fails
stops the run too: its silence is not a blank device. The seed's `mkfs.xfs -f /dev/sdX` erased
whatever disk sdX named that day.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from keybuzz.volumes.plan import FSTAB, FSTAB_MARK, LABEL_PREFIX, Volume


def _mounts_uuid(line: str, uuid: str) -> bool:
    return bool(uuid) and line.split()[:1] == [f"UUID={uuid}"]


def _marked(line: str) -> bool:
    """keybuzz wrote this fstab line: its mark is among the options."""
    fields = line.split()
    return len(fields) > 3 and FSTAB_MARK in fields[3].split(",")


@dataclass(frozen=True)
class DeviceState:
    """One probe of a volume's device, its mount point and its fstab line."""

    real: str = ""  # the device node the path resolves to (/dev/sdb, /dev/loop3)
    block: bool = False
    fs_type: str = ""
    uuid: str = ""
    label: str = ""
    pt_type: str = ""  # a partition table (gpt, dos)
    signatures: tuple[str, ...] = ()  # wipefs: every signature, filesystem or not
    partitions: tuple[str, ...] = ()
    mounted_at: tuple[str, ...] = ()  # where the device is mounted now
    path_source: str = ""  # what is mounted at the volume's path now
    path_fstype: str = ""
    path_options: tuple[str, ...] = ()
    path_exists: bool = False
    path_empty: bool = True
    fstab: tuple[str, ...] = ()  # fstab lines naming the path
    failures: tuple[str, ...] = ()  # probe tools that failed: the command, its exit status and its error

    @property
    def blank(self) -> bool:
        return not (self.fs_type or self.pt_type or self.signatures or self.partitions)

    @property
    def found(self) -> str:
        """What is on the device, for messages."""
        parts = []
        if self.fs_type:
            details = [self.fs_type, *([f"UUID {self.uuid}"] if self.uuid else []),
                       f"label {self.label!r}" if self.label else "no label"]
            parts.append(f"a filesystem ({', '.join(details)})")
        if self.pt_type:
            parts.append(f"a {self.pt_type} partition table")
        if self.partitions:
            parts.append(f"partition(s) {', '.join(self.partitions)}")
        others = [s for s in self.signatures if s not in (self.fs_type, self.pt_type)]
        if others:
            parts.append(f"signature(s) {', '.join(others)}")
        return ", ".join(parts) or "nothing"

    @property
    def mounted_here(self) -> bool:
        return bool(self.path_source) and self.path_source == self.real

    @property
    def in_fstab(self) -> bool:
        """An fstab line mounts this filesystem by its UUID at the path (a reboot brings it back)."""
        return any(_mounts_uuid(line, self.uuid) for line in self.fstab)

    @property
    def recorded(self) -> bool:
        """keybuzz's own fstab line mounts this filesystem at the path: a volume an earlier keybuzz made."""
        return any(_mounts_uuid(line, self.uuid) and _marked(line) for line in self.fstab)


# `ran OK TOOL ARGS...`: true when the tool succeeded, or exited with one of the OK codes (its "found
# nothing") and said nothing; its output is then in $t/out. Otherwise one `fail=` line: the command,
# its exit status and the first of its error. blkid -p exits 2 and findmnt 1 when they find nothing.
_RAN = r"""ran() {
  ok=$1; shift
  "$@" >"$t/out" 2>"$t/err" && return 0
  rc=$?
  case " $ok " in *" $rc "*) [ -s "$t/err" ] || return 0 ;; esac
  printf 'fail=`%s` exited %s: %s\n' "$*" "$rc" "$(head -c 300 "$t/err" | tr '\n' ' ')"
  return 1
}"""


def probe_script(volume: Volume) -> str:
    """Read-only: blkid, wipefs -n, lsblk, findmnt, ls, fstab. One `key=value` per line."""
    q = shlex.quote
    path = q(volume.path)
    return "\n".join([
        "LC_ALL=C; export LC_ALL",
        "t=$(mktemp -d) || exit 1",
        "trap 'rm -rf \"$t\"' EXIT",
        _RAN,
        f"real=$(readlink -f -- {q(volume.device)} 2>/dev/null) || real=",
        'echo "real=$real"',
        'if [ -n "$real" ] && [ -b "$real" ]; then echo block=1',
        "  ran 2 blkid -p -o export -- \"$real\" && "
        "sed -n 's/^\\(TYPE\\|UUID\\|PTTYPE\\|LABEL\\)=/blkid.\\1=/p' \"$t/out\"",
        "  ran '' wipefs --no-act --noheadings --output TYPE -- \"$real\" && sed 's/^/sig=/' \"$t/out\"",
        "  ran '' lsblk -rno NAME -- \"$real\" && tail -n +2 \"$t/out\" | sed 's/^/part=/'",
        "  ran 1 findmnt -rn -o TARGET --source \"$real\" && sed 's/^/mountedat=/' \"$t/out\"",
        "fi",
        f"ran 1 findmnt -rn -o SOURCE,FSTYPE,OPTIONS --mountpoint {path} && "
        "head -n 1 \"$t/out\" | sed 's/^/pathmount=/'",
        f"if [ -d {path} ]; then echo pathdir=1",
        f"  ran '' ls -A -- {path} && [ -s \"$t/out\" ] && echo pathempty=0",
        "fi",
        f"if [ -e {FSTAB} ]; then",
        f"  ran '' awk -v p={path} '$1 !~ /^#/ && $2 == p' {FSTAB} && sed 's/^/fstab=/' \"$t/out\"",
        "fi",
        "exit 0",
    ]) + "\n"


def parse_probe(output: str) -> DeviceState:
    values: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value.strip())

    def one(key: str) -> str:
        return values.get(key, [""])[0]

    source, fstype, options = [*one("pathmount").split(" "), "", "", ""][:3]
    return DeviceState(
        real=one("real"), block=one("block") == "1", fs_type=one("blkid.TYPE"), uuid=one("blkid.UUID"),
        label=one("blkid.LABEL"), pt_type=one("blkid.PTTYPE"), signatures=tuple(s for s in values.get("sig", []) if s),
        partitions=tuple(p for p in values.get("part", []) if p),
        mounted_at=tuple(m for m in values.get("mountedat", []) if m),
        path_source=source, path_fstype=fstype, path_options=tuple(o for o in options.split(",") if o),
        path_exists=one("pathdir") == "1", path_empty=one("pathempty") != "0",
        fstab=tuple(values.get("fstab", [])), failures=tuple(values.get("fail", [])))


@dataclass(frozen=True)
class Decision:
    """What prepare does; `refusal` set means nothing at all is done on this volume."""

    format: bool = False
    mount: bool = False
    remount_options: tuple[str, ...] = ()  # declared options missing from the live mount
    label: bool = False  # an unlabelled XFS of an earlier keybuzz, known by its fstab line: label it now
    refusal: str = ""


def _not_made_here(volume: Volume, state: DeviceState, where: str) -> str:
    """The refusal of an XFS that is neither labelled for this data path nor in keybuzz's fstab line."""
    swapped = (" (a label keybuzz gives another data path: are two devices swapped in keybuzz.yaml?)"
               if state.label.startswith(LABEL_PREFIX) else "")
    relabel = (f"`xfs_io -c 'label -s {volume.label}' {state.mounted_at[0]}`" if state.mounted_at
               else f"`xfs_admin -L {volume.label} {volume.device}`")
    return (f"{where} holds {state.found}{swapped} that keybuzz did not make for {volume.use}: it is not labelled "
            f"{volume.label} and no keybuzz line of {FSTAB} mounts its UUID at {volume.path}. Nothing was changed. "
            f"If it is the volume of {volume.use} (formatted by hand, or its label lost), label it on {volume.host} "
            f"with {relabel} and re-run; otherwise fix keybuzz.yaml volumes")


def decide(volume: Volume, state: DeviceState) -> Decision:
    where = f"{volume.host}: {volume.device}"
    if state.failures:
        return Decision(refusal=f"{where}: probing failed: {'; '.join(state.failures)}. Nothing was changed: "
                        "keybuzz decides from these tools whether a device is blank, so a failed one stops the run "
                        f"instead of reading as blank. Run the command on {volume.host} to see why (an I/O error: "
                        "`dmesg`), fix it and re-run")
    if not state.block:
        return Decision(refusal=f"{where} is not a block device here (resolves to {state.real or 'nothing'}): "
                        f"is the volume attached to {volume.host}? `ls -l /dev/disk/by-id/` on {volume.host} "
                        "lists what is")
    where = f"{where} ({state.real})"
    if state.fs_type != volume.filesystem and not state.blank:
        return Decision(refusal=f"{where} holds {state.found}, not {volume.filesystem}: nothing was changed. "
                        f"keybuzz formats only a blank device and never formats over data. If this is the "
                        f"right device and what it holds may go, erase it yourself (`wipefs --all "
                        f"{state.real}` on {volume.host}) and re-run; otherwise fix keybuzz.yaml volumes")
    if state.fs_type == volume.filesystem and state.label != volume.label and not state.recorded:
        return Decision(refusal=_not_made_here(volume, state, where))
    elsewhere = [m for m in state.mounted_at if m != volume.path]
    if elsewhere:
        return Decision(refusal=f"{where} is mounted at {', '.join(elsewhere)}: it is in use for something else; "
                        f"keybuzz mounts it only at {volume.path}")
    if state.path_source and not state.mounted_here:
        return Decision(refusal=f"{volume.host}: {volume.path} already has {state.path_source} "
                        f"({state.path_fstype}) mounted, not {volume.device}: unmount it or fix keybuzz.yaml volumes")
    # Another line for this path: refused, except keybuzz's own line of a volume replaced by a blank one.
    foreign = [line for line in state.fstab if not _mounts_uuid(line, state.uuid)]
    if foreign and not (state.blank and all(_marked(line) for line in foreign)):
        return Decision(refusal=f"{volume.host}: {FSTAB} already mounts something else at {volume.path} "
                        f"({foreign[0]!r}), not {volume.device}: remove that line if that volume is gone for "
                        "good, or fix keybuzz.yaml volumes")
    if not state.mounted_here and state.path_exists and not state.path_empty:
        return Decision(refusal=f"{volume.host}: {volume.path} is a folder with data on the root disk: mounting "
                        f"{volume.device} over it would hide that data from the service. Move it onto the "
                        "volume first (stop the service, mount the volume elsewhere, copy, empty the folder), "
                        "then re-run")
    missing = () if not state.mounted_here else tuple(o for o in volume.options if o not in state.path_options)
    return Decision(format=state.blank, mount=not state.mounted_here, remount_options=missing,
                    label=state.fs_type == volume.filesystem and not state.label)


def recheck(volume: Volume, before: DeviceState, now: DeviceState) -> str:
    """Right before mkfs, from a new probe: why the device may not be formatted any more ("" if it may).
    A device renamed or written to since the first probe is left alone."""
    if now.real != before.real:
        return (f"{volume.host}: {volume.device} now resolves to {now.real or 'nothing'}, not {before.real} as when "
                f"it was probed: nothing was formatted. Check what is attached (`ls -l /dev/disk/by-id/` on "
                f"{volume.host}) and re-run")
    again = decide(volume, now)
    if again.format:
        return ""
    return again.refusal or (f"{volume.host}: {volume.device} ({now.real}) now holds {now.found}, it was blank "
                             "when probed: nothing was formatted; re-run to decide again")


def format_argv(volume: Volume) -> list[str]:
    """mkfs by the declared stable path (a kernel name can change between probe and mkfs), with the data
    path's label; without -f, so mkfs itself refuses a device that holds a filesystem or a partition table."""
    return ["mkfs.xfs", "-q", "-L", volume.label, "--", volume.device]


def label_script(volume: Volume, real: str) -> str:
    """Label an adopted XFS online (xfs_io on its mount point), only once the path is mounted from it."""
    q = shlex.quote
    path = q(volume.path)
    return (f'[ "$(findmnt -rn -o SOURCE --mountpoint {path})" = {q(real)} ] || '
            f"{{ printf '%s is not mounted from %s\\n' {path} {q(real)} >&2; exit 1; }}; "
            f"xfs_io -c {q(f'label -s {volume.label}')} {path} >/dev/null")
