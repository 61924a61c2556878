"""Host services (render.HostService) as files and systemctl command lines, as data.

The unit file carries a hash of everything that defines the service (its binary's pinned sha256,
the unit text, the hashes of its restart_on files): a changed hash means a changed unit file,
and a changed unit file or binary means a restart. Lab hosts have no systemd: this path is
covered by unit tests of the actions, not by the lab.
"""

from __future__ import annotations

import hashlib
import json

from keybuzz.render import FileSpec, HostService

UNIT_DIR = "/etc/systemd/system"
SPEC_HASH_COMMENT = "# io.keybuzz.spec-hash="


def unit_path(service: HostService) -> str:
    return f"{UNIT_DIR}/{service.name}.service"


def spec_hash(service: HostService, file_hashes: dict[str, str]) -> str:
    payload = {"binary": service.binary, "sha256": service.sha256, "unit": service.unit,
               "watched": {path: file_hashes.get(path, "") for path in sorted(service.restart_on)}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def unit_file(service: HostService, file_hashes: dict[str, str]) -> FileSpec:
    header = (f"# Rendered by keybuzz (module {service.module}): edits are overwritten on the next install.\n"
              f"{SPEC_HASH_COMMENT}{spec_hash(service, file_hashes)}\n")
    return FileSpec(unit_path(service), header + service.unit.rstrip("\n") + "\n")


def restart(name: str) -> list[list[str]]:
    return [["systemctl", "daemon-reload"], ["systemctl", "enable", f"{name}.service"],
            ["systemctl", "restart", f"{name}.service"]]


def start(name: str) -> list[str]:
    return ["systemctl", "start", f"{name}.service"]


def is_active(name: str) -> list[str]:
    return ["systemctl", "is-active", f"{name}.service"]


def remove(name: str) -> list[list[str]]:
    return [["systemctl", "disable", "--now", f"{name}.service"]]
