"""Which block device holds which data path on which server: keybuzz.yaml `volumes` joined with the
data paths the modules declare (Module.volume_paths). Pure: the site checks and the fstab line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keybuzz.errors import InputError
from keybuzz.site import Site
from keybuzz.site.config import VolumeAttach
from keybuzz.site.yamlfile import LocatedYaml

if TYPE_CHECKING:
    from keybuzz.contract import Module, VolumePath

FSTAB = "/etc/fstab"
# Marks keybuzz's fstab lines (mount ignores x-* options): a lab host's boot mounts only these
# (`mount -a -O x-keybuzz`), and an operator reading fstab sees who wrote them.
FSTAB_MARK = "x-keybuzz"
# A volume that is missing at boot must not stop the server in emergency mode (no SSH on a cloud
# server): nofail lets it boot, and the mount point underneath is 0000 root, so a database that
# starts without its volume fails on a permission error instead of writing to the root disk.
FSTAB_BOOT_OPTIONS = ("nofail",)
# The filesystem label keybuzz writes at mkfs (XFS allows 12 characters): what tells a volume keybuzz
# made for a data path from any other XFS attached to the server.
LABEL_PREFIX = "kb-"


def label(use: str) -> str:
    """`mariadb.data` -> `kb-mari-data`: the prefix, then up to 4 characters of the module and of the
    data path's name. Deterministic, so a re-install over kept volumes recognises them."""
    module, _, name = use.partition(".")
    return f"{LABEL_PREFIX}{module[:4]}-{name[:4]}"


@dataclass(frozen=True)
class Volume:
    """One device to prepare and mount on one server."""

    host: str
    use: str  # module.name, as keybuzz.yaml says it
    path: str
    what: str
    device: str
    filesystem: str
    options: tuple[str, ...]
    min_free_percent: int

    @property
    def label(self) -> str:
        return label(self.use)


def declared_paths(site: Site, modules: Sequence[Module]) -> dict[str, tuple[Module, VolumePath]]:
    """`module.name` -> the declaration, for every module with servers in this site."""
    return {f"{m.name}.{p.name}": (m, p) for m in modules for p in m.volume_paths(site)}


def _servers_of(site: Site, attach: VolumeAttach) -> list[str]:
    if attach.server is not None:
        return [attach.server] if any(s.hostname == attach.server for s in site.servers) else []
    return [s.hostname for s in site.with_role(attach.role or "")]


def volumes(site: Site, modules: Sequence[Module]) -> list[Volume]:
    """Every (server, data path) the site puts on a device; entries the site checks refuse are left out."""
    declared = declared_paths(site, modules)
    found: list[Volume] = []
    for attach in site.config.volumes:
        if attach.use not in declared:
            continue
        _, path = declared[attach.use]
        for host in _servers_of(site, attach):
            if site.server(host).has(path.role):
                found.append(Volume(host, attach.use, path.path, path.what, attach.device, attach.filesystem,
                                    tuple(attach.options), attach.min_free_percent))
    return found


def for_module(site: Site, module: Module) -> dict[str, list[Volume]]:
    """The module's volumes, per host."""
    per_host: dict[str, list[Volume]] = {}
    for volume in volumes(site, [module]):
        per_host.setdefault(volume.host, []).append(volume)
    return per_host


def site_errors(site: Site, modules: Sequence[Module], file: str, located: LocatedYaml | None) -> list[InputError]:
    """Every problem of keybuzz.yaml `volumes` against servers.tsv and the modules, with its line."""
    declared = declared_paths(site, modules)
    known = ", ".join(sorted(declared)) or "none for these servers"
    errors: list[InputError] = []
    by_target: dict[tuple[str, str], int] = {}
    by_device: dict[tuple[str, str], int] = {}
    for index, attach in enumerate(site.config.volumes):
        def error(key: str, message: str, hint: str, index: int = index) -> None:
            line = located.line_of(("volumes", index, key)) if located else 0
            errors.append(InputError(file, line, f"volumes[{index}]: {message}", hint))

        if attach.use not in declared:
            error("use", f"use {attach.use!r} is no module's data path", f"use one of: {known}")
            continue
        _, path = declared[attach.use]
        hosts = _servers_of(site, attach)
        if attach.server is not None and not hosts:
            error("server", f"server {attach.server!r} is not in servers.tsv", "name a hostname of servers.tsv")
            continue
        if attach.role is not None and not hosts:
            error("role", f"no server has role {attach.role!r}", "name a role of servers.tsv")
            continue
        for host in hosts:
            if not site.server(host).has(path.role):
                error("server" if attach.server else "role",
                      f"{host} has no role {path.role}, so it keeps no {attach.use} ({path.what})",
                      f"attach {attach.use} to servers of role {path.role}")
                continue
            for key, seen, what, field in (((host, attach.use), by_target, f"{attach.use} on {host}", "use"),
                                           ((host, attach.device), by_device, f"device {attach.device} on {host}",
                                            "device")):
                if key in seen:
                    error(field, f"{what} is already given by volumes[{seen[key]}]",
                          "one device per data path, one data path per device")
                seen.setdefault(key, index)
    return errors


def fstab_line(volume: Volume, uuid: str) -> str:
    """By filesystem UUID: it follows the volume whatever name the kernel gives the device."""
    options = ",".join([*volume.options, *FSTAB_BOOT_OPTIONS, FSTAB_MARK])
    return f"UUID={uuid} {volume.path} {volume.filesystem} {options} 0 0"


def fstab_match(volume: Volume) -> str:
    """The regex of any fstab line mounting something at the volume's path (replaced, never doubled)."""
    return rf"^\s*\S+\s+{re.escape(volume.path)}\s"
