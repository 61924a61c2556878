"""The lab's stand-in for Hetzner volumes: sparse files in the lab folder, attached as loop devices,
each seen by its one host under /dev/disk/by-id (a tmpfs of that host's own mount namespace).

As in the seed, PostgreSQL (data and WAL) and MariaDB (datadir) get volumes; the other modules keep
their data on the root disk. The devices start blank: `keybuzz install` formats them XFS, as it
would a new Hetzner volume. `lab down` detaches them and deletes the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keybuzz.lab.errors import LabError, run
from keybuzz.lab.topology import HostSpec

LAB_VOLUMES: dict[str, tuple[str, ...]] = {"db": ("postgres.data", "postgres.wal"), "maria": ("mariadb.data",)}
SIZE_BYTES = 2 << 30  # sparse: only what is written takes room; XFS wants at least 300 MiB
FOLDER = "volumes"
HOST_FILE = "volumes"  # in each host's folder: `by-id-name loop-device` per line, read by host-init


@dataclass(frozen=True)
class LabVolume:
    host: str
    use: str

    @property
    def by_id(self) -> str:
        """Named like a Hetzner volume (scsi-0HC_Volume_ID), marked as the lab's."""
        return f"scsi-0HC_Volume_kblab-{self.host}-{self.use.replace('.', '-')}"

    @property
    def device(self) -> str:
        return f"/dev/disk/by-id/{self.by_id}"


def lab_volumes(hosts: list[HostSpec]) -> list[LabVolume]:
    return [LabVolume(h.name, use) for h in hosts if h.lb is None
            for role in h.roles for use in LAB_VOLUMES.get(role, ())]


def volume_config(hosts: list[HostSpec]) -> list[dict[str, str]]:
    """keybuzz.yaml `volumes` of the lab site."""
    return [{"server": v.host, "use": v.use, "device": v.device} for v in lab_volumes(hosts)]


def backing_file(lab_dir: Path, volume: LabVolume) -> Path:
    return lab_dir / FOLDER / f"{volume.host}-{volume.use}.img"


def _attached(path: Path) -> str:
    """The loop device backed by `path`, or ""."""
    out = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(path)]).stdout.split()
    return out[0] if out else ""


def attach(lab_dir: Path, hosts_dir: Path, hosts: list[HostSpec]) -> None:
    """Each volume's file created (once) and attached (again after a reboot of this machine); each
    host's list written for its init."""
    volumes = lab_volumes(hosts)
    if volumes:
        # /dev is this machine's, shared by every host: the mount point of the hosts' private
        # /dev/disk (udev would have made it on a machine with systemd).
        os.makedirs("/dev/disk", exist_ok=True)
        (lab_dir / FOLDER).mkdir(exist_ok=True)
    lines: dict[str, list[str]] = {h.name: [] for h in hosts if h.lb is None}
    for volume in volumes:
        path = backing_file(lab_dir, volume)
        if not path.exists():
            with open(path, "wb") as file:
                file.truncate(SIZE_BYTES)
        loop = _attached(path) or run(["losetup", "--find", "--show", str(path)]).stdout.strip()
        if not loop.startswith("/dev/loop"):
            raise LabError(f"losetup gave no loop device for {path}: {loop!r}")
        lines[volume.host].append(f"{volume.by_id} {loop}")
    for host, entries in lines.items():
        target = hosts_dir / host / HOST_FILE
        if entries:
            target.write_text("\n".join(entries) + "\n")
        elif target.exists():
            target.unlink()


def detach_all(lab_dir: Path) -> None:
    """Every loop device backed by a file of this lab, detached (the files go with the folder)."""
    folder = lab_dir / FOLDER
    for path in sorted(folder.glob("*.img")) if folder.is_dir() else []:
        loop = _attached(path)
        while loop:
            run(["losetup", "--detach", loop], check=False)
            again = _attached(path)
            if again == loop:  # still busy (a mount not yet released): autoclear frees it on release
                break
            loop = again
