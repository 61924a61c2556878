"""The site a lab writes for itself: every keybuzz command then works on the lab with `--site`."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from keybuzz.lab.topology import HostSpec, host_ip
from keybuzz.site import example
from keybuzz.site.writer import ServerRow, write_site

LAB_DOMAIN = "lab.keybuzz.io"
# versions.yaml keys served by lab images, and why the others keep the seed's reference.
LAB_IMAGE_NOTE = "lab image: built by `keybuzz lab` from Debian packages"
INSIDE_PATRONI = {"etcd": "lab: the etcd 3.4 server is inside the patroni image",
                  "postgres": "lab: PostgreSQL 15 is inside the patroni image"}
NOT_IN_DEBIAN = "not in Debian: seed reference kept, cannot run in the lab"
NOT_BUILT = "seed reference kept: Debian has it, but the lab builds no image for it yet"
DEBIAN_MISSING = {"minio", "proxysql", "k3s"}

COMMENT = """keybuzz lab site, written by `keybuzz lab up`; `keybuzz lab down` deletes it.
Columns: hostname, private_ip, public_ip (may be empty), roles (comma-separated), fqdn (may be empty).
The load-balancer hosts (.10, .20) are the lab's stand-in for Hetzner's load balancers: not servers."""


def server_rows(subnet: ipaddress.IPv4Network, hosts: list[HostSpec]) -> list[ServerRow]:
    return [ServerRow(h.name, str(host_ip(subnet, h.offset)), h.roles, fqdn=f"{h.name}.{LAB_DOMAIN}")
            for h in hosts if h.lb is None]


def lab_config(subnet: ipaddress.IPv4Network, hosts: list[HostSpec], key: Path, known_hosts: Path) -> dict[str, Any]:
    config = example.seed_config()
    offsets = {h.lb: h.offset for h in hosts if h.lb}
    config["network"] = {"cidr": str(subnet)}
    config["domain"] = LAB_DOMAIN
    config["container_cli"] = "podman"
    config["load_balancers"] = [dict(lb, vip=str(host_ip(subnet, offsets[lb["name"]])))
                                for lb in config["load_balancers"] if lb["name"] in offsets]
    config["ssh"] = {"user": "root", "port": 22, "identity_file": str(key), "known_hosts": str(known_hosts)}
    return config


def lab_versions(refs: dict[str, str]) -> dict[str, Any]:
    versions = example.seed_versions()
    versions["images"].update(refs)
    for key in INSIDE_PATRONI:
        versions["images"][key] = refs["patroni"]
    return versions


def annotate_versions(text: str, lab_keys: set[str]) -> str:
    """Say on each image line where it comes from (write_site writes plain YAML)."""
    out, section = [], ""
    for line in text.splitlines():
        if re.match(r"^\w", line):
            section = line.rstrip(":")
        match = re.match(r"^  ([\w-]+): ", line)
        if section == "images" and match:
            key = match[1]
            note = INSIDE_PATRONI.get(key) or (LAB_IMAGE_NOTE if key in lab_keys else
                                               NOT_IN_DEBIAN if key in DEBIAN_MISSING else NOT_BUILT)
            line = f"{line}  # {note}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_lab_site(root: Path, subnet: ipaddress.IPv4Network, hosts: list[HostSpec], refs: dict[str, str],
                   key: Path, known_hosts: Path) -> None:
    write_site(root, server_rows(subnet, hosts), lab_config(subnet, hosts, key, known_hosts),
               lab_versions(refs), COMMENT)
    path = root / "versions.yaml"
    path.write_text(annotate_versions(path.read_text(), set(refs) - set(INSIDE_PATRONI)))
