"""The site a lab writes for itself: every keybuzz command then works on the lab with `--site`."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from keybuzz.images import LabAlias, LabRecipe
from keybuzz.lab.topology import HostSpec, host_ip
from keybuzz.lab.volumes import volume_config
from keybuzz.registry import credential_files, example_config, images, seed_versions
from keybuzz.secrets import CredentialStore
from keybuzz.site.loader import CREDENTIALS_DIR
from keybuzz.site.writer import ServerRow, write_site

LAB_DOMAIN = "lab.keybuzz.io"
LAB_IMAGE_NOTE = "lab image: built by `keybuzz lab` from Debian packages"

COMMENT = """keybuzz lab site, written by `keybuzz lab up`; `keybuzz lab down` deletes it.
Columns: hostname, private_ip, public_ip (may be empty), roles (comma-separated), fqdn (may be empty).
The load-balancer hosts (.10, .20) are the lab's stand-in for Hetzner's load balancers: not servers."""


def server_rows(subnet: ipaddress.IPv4Network, hosts: list[HostSpec]) -> list[ServerRow]:
    return [ServerRow(h.name, str(host_ip(subnet, h.offset)), h.roles, fqdn=f"{h.name}.{LAB_DOMAIN}")
            for h in hosts if h.lb is None]


# Every lab server shares this machine's 2 cores: the pre-checks' command on all 24 servers at once (24 sshd,
# shells, podman listings) starved SeaweedFS's master leader past its 500 ms lease in 3 of 6 no-op installs
# (a step-down then refuses writes for 15 s). 12 servers at once: 0 step-downs in 8, the same install times.
LAB_SSH_PARALLELISM = 12


def lab_config(subnet: ipaddress.IPv4Network, hosts: list[HostSpec], key: Path, known_hosts: Path,
               container_cli: str = "podman") -> dict[str, Any]:
    config = example_config(lab=True)
    offsets = {h.lb: h.offset for h in hosts if h.lb}
    config["network"] = {"cidr": str(subnet)}
    config["domain"] = LAB_DOMAIN
    config["container_cli"] = container_cli
    config["load_balancers"] = [dict(lb, vip=str(host_ip(subnet, offsets[lb["name"]])))
                                for lb in config["load_balancers"] if lb["name"] in offsets]
    config["ssh"] = {"user": "root", "port": 22, "identity_file": str(key), "known_hosts": str(known_hosts),
                     "parallelism": LAB_SSH_PARALLELISM}
    config["volumes"] = volume_config(hosts)
    return config


def lab_versions(refs: dict[str, str]) -> dict[str, Any]:
    """The seed's pins, with every image the lab builds (or serves from another) replaced by its lab reference."""
    versions = seed_versions()
    for key, spec in images().items():
        if isinstance(spec.lab, LabRecipe):
            versions["images"][key] = refs[key]
        elif isinstance(spec.lab, LabAlias):
            versions["images"][key] = refs[spec.lab.key]
    versions["images"]["base"] = refs["base"]
    return versions


def image_note(key: str) -> str:
    """Where a lab site's image line comes from (write_site writes plain YAML)."""
    spec = images().get(key)
    if spec is None or isinstance(spec.lab, LabRecipe):
        return LAB_IMAGE_NOTE
    if isinstance(spec.lab, LabAlias):
        return f"lab: {spec.lab.why}"
    return spec.note or "cannot run in the lab"


def annotate_versions(text: str) -> str:
    out, section = [], ""
    for line in text.splitlines():
        if re.match(r"^\w", line):
            section = line.rstrip(":")
        match = re.match(r"^  ([\w-]+): ", line)
        if section == "images" and match:
            line = f"{line}  # {image_note(match[1])}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_lab_site(root: Path, subnet: ipaddress.IPv4Network, hosts: list[HostSpec], refs: dict[str, str],
                   key: Path, known_hosts: Path, container_cli: str = "podman") -> None:
    write_site(root, server_rows(subnet, hosts), lab_config(subnet, hosts, key, known_hosts, container_cli),
               lab_versions(refs), COMMENT, credential_files())
    path = root / "versions.yaml"
    path.write_text(annotate_versions(path.read_text()))


def add_credentials(root: Path) -> list[str]:
    """What the modules declare and a reused lab's site lacks (a module's new login); existing values kept."""
    return CredentialStore(root / CREDENTIALS_DIR).ensure(credential_files())
