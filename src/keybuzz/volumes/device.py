"""What is on a volume's device and at its mount point, and what keybuzz may do about it. Pure.

The one rule: keybuzz formats only a device that holds nothing at all (no filesystem, no partition
table, no signature of any kind, no partition), and mounts only a device that holds the declared
filesystem. Anything else stops the run, naming host, device and what was found; there is no flag
to format over it. The seed's `mkfs.xfs -f /dev/sdX` erased whatever disk sdX named that day.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from keybuzz.volumes.plan import FSTAB, FSTAB_MARK, Volume


@dataclass(frozen=True)
class DeviceState:
    """One probe of a volume's device, its mount point and its fstab line."""

    real: str = ""  # the device node the path resolves to (/dev/sdb, /dev/loop3)
    block: bool = False
    fs_type: str = ""
    uuid: str = ""
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

    @property
    def blank(self) -> bool:
        return not (self.fs_type or self.pt_type or self.signatures or self.partitions)

    @property
    def found(self) -> str:
        """What is on the device, for messages."""
        parts = []
        if self.fs_type:
            parts.append(f"a filesystem ({self.fs_type}" + (f", UUID {self.uuid})" if self.uuid else ")"))
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


def probe_script(volume: Volume) -> str:
    """Read-only: blkid, wipefs -n, lsblk, findmnt, fstab. One `key=value` per line."""
    q = shlex.quote
    path = q(volume.path)
    return "\n".join([
        "LC_ALL=C; export LC_ALL",
        f"real=$(readlink -f -- {q(volume.device)} 2>/dev/null) || real=",
        'echo "real=$real"',
        'if [ -n "$real" ] && [ -b "$real" ]; then echo block=1',
        "  blkid -p -o export -- \"$real\" 2>/dev/null | sed -n 's/^\\(TYPE\\|UUID\\|PTTYPE\\)=/blkid.\\1=/p'",
        "  wipefs --no-act --noheadings --output TYPE -- \"$real\" 2>/dev/null | sed 's/^/sig=/'",
        "  lsblk -rno NAME -- \"$real\" 2>/dev/null | tail -n +2 | sed 's/^/part=/'",
        "  findmnt -rn -o TARGET --source \"$real\" 2>/dev/null | sed 's/^/mountedat=/'",
        "fi",
        f"findmnt -rn -o SOURCE,FSTYPE,OPTIONS --mountpoint {path} 2>/dev/null | head -n 1 | sed 's/^/pathmount=/'",
        f"if [ -d {path} ]; then echo pathdir=1",
        f"  if [ -n \"$(ls -A -- {path} 2>/dev/null)\" ]; then echo pathempty=0; fi",
        "fi",
        f"awk -v p={path} '$1 !~ /^#/ && $2 == p' {FSTAB} 2>/dev/null | sed 's/^/fstab=/'",
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
        pt_type=one("blkid.PTTYPE"), signatures=tuple(s for s in values.get("sig", []) if s),
        partitions=tuple(p for p in values.get("part", []) if p),
        mounted_at=tuple(m for m in values.get("mountedat", []) if m),
        path_source=source, path_fstype=fstype, path_options=tuple(o for o in options.split(",") if o),
        path_exists=one("pathdir") == "1", path_empty=one("pathempty") != "0",
        fstab=tuple(values.get("fstab", [])))


@dataclass(frozen=True)
class Decision:
    """What prepare does; `refusal` set means nothing at all is done on this volume."""

    format: bool = False
    mount: bool = False
    remount_options: tuple[str, ...] = ()  # declared options missing from the live mount
    refusal: str = ""


def decide(volume: Volume, state: DeviceState) -> Decision:
    where = f"{volume.host}: {volume.device}"
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
    elsewhere = [m for m in state.mounted_at if m != volume.path]
    if elsewhere:
        return Decision(refusal=f"{where} is mounted at {', '.join(elsewhere)}: it is in use for something else; "
                        f"keybuzz mounts it only at {volume.path}")
    if state.path_source and not state.mounted_here:
        return Decision(refusal=f"{volume.host}: {volume.path} already has {state.path_source} "
                        f"({state.path_fstype}) mounted, not {volume.device}: unmount it or fix keybuzz.yaml volumes")
    # Another line for this path: refused, except keybuzz's own line of a volume replaced by a blank one.
    foreign = [line for line in state.fstab if not (state.uuid and line.startswith(f"UUID={state.uuid} "))]
    if foreign and not (state.blank and all(FSTAB_MARK in line for line in foreign)):
        return Decision(refusal=f"{volume.host}: {FSTAB} already mounts something else at {volume.path} "
                        f"({foreign[0]!r}), not {volume.device}: remove that line if that volume is gone for "
                        "good, or fix keybuzz.yaml volumes")
    if not state.mounted_here and state.path_exists and not state.path_empty:
        return Decision(refusal=f"{volume.host}: {volume.path} is a folder with data on the root disk: mounting "
                        f"{volume.device} over it would hide that data from the service. Move it onto the "
                        "volume first (stop the service, mount the volume elsewhere, copy, empty the folder), "
                        "then re-run")
    missing = () if not state.mounted_here else tuple(o for o in volume.options if o not in state.path_options)
    return Decision(format=state.blank, mount=not state.mounted_here, remount_options=missing)
