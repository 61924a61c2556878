"""The container runtime at its pinned version (production only: a package install acts on the whole
machine). Docker comes from Docker's own apt repository for the servers' OS (base_os.os), whose key is
refused unless it has Docker's published fingerprint (the seed ran `curl | sh` unpinned); podman from
the distribution. Both are held."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from keybuzz.images import SoftwarePin
from keybuzz.modules.base_os import layout
from keybuzz.modules.base_os.distro import DEBIAN_12, DISTROS, DOCKER_ENGINE, Distro
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.site import Site

# Docker signs its Debian and Ubuntu repositories with the same key.
DOCKER_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
_DEBIAN = DISTROS[DEBIAN_12]
# versions.yaml `software:`: apt versions (the epoch and revision included), never "latest"; these are
# Debian 12's builds (what a new site gets): an Ubuntu site pins Ubuntu's (lint KB027).
SOFTWARE = (SoftwarePin("docker", _DEBIAN.docker_version(DOCKER_ENGINE)),
            SoftwarePin("podman", _DEBIAN.podman or ""))


@dataclass(frozen=True)
class Runtime:
    cli: str
    packages: tuple[str, ...]  # pinned and held
    extra: tuple[str, ...]  # installed with them, unpinned (Docker's containerd)
    version: str
    distro: Distro  # the servers' OS: where Docker's packages come from

    def pin_file(self) -> str:
        return (f"# Rendered by keybuzz (module base_os): the container runtime stays at its pinned version.\n"
                f"Package: {' '.join(self.packages)}\nPin: version {self.version}\nPin-Priority: 1001\n")

    def version_script(self) -> str:
        """Prints `package version` per pinned package (nothing for a package that is not installed)."""
        return f"dpkg-query -W -f='${{Package}} ${{Version}}\\n' {' '.join(self.packages)} 2>/dev/null || true"

    def install_script(self) -> str:
        q = shlex.quote
        wanted = " ".join(q(f"{p}={self.version}") for p in self.packages)
        lines = ["set -e", "export DEBIAN_FRONTEND=noninteractive", "apt-get update -q"]
        if self.cli == "docker":
            keyring, tmp = q(layout.DOCKER_KEYRING), q(layout.DOCKER_KEYRING + ".keybuzz-tmp")
            lines += [
                "apt-get install -y -q ca-certificates curl gnupg",
                f"install -d -m 0755 {q(layout.DOCKER_KEYRING.rsplit('/', 1)[0])}",
                f"if [ ! -s {keyring} ]; then curl -fsSL {q(self.distro.docker_repository + '/gpg')} -o {tmp}; "
                f"gpg --show-keys --with-colons {tmp} | awk -F: '$1==\"fpr\"{{print $10}}' | "
                f"grep -qx {DOCKER_KEY_FINGERPRINT} || {{ rm -f {tmp}; echo \"Docker's apt key does not have "
                f"fingerprint {DOCKER_KEY_FINGERPRINT}\" >&2; exit 1; }}; chmod 0644 {tmp}; mv {tmp} {keyring}; fi",
                "apt-get update -q",
            ]
        lines += [f"apt-get install -y -q {wanted} {' '.join(self.extra)}".rstrip(),
                  f"apt-mark hold {' '.join(self.packages)} >/dev/null"]
        return "\n".join(lines) + "\n"


def default_version(cli: str, distro: Distro) -> str | None:
    """The pin a site gets when versions.yaml does not set one (None: this OS's podman is not known here)."""
    return distro.docker_version(DOCKER_ENGINE) if cli == "docker" else distro.podman


def runtime(site: Site) -> Runtime:
    cli = site.config.container_cli
    distro = site.settings(BaseOsSettings).distro
    version = site.versions.software.get(cli) or default_version(cli, distro) or ""
    if cli == "docker":
        return Runtime(cli, ("docker-ce", "docker-ce-cli"), ("containerd.io",), version, distro)
    return Runtime(cli, ("podman",), (), version, distro)


def docker_list(distro: Distro) -> str:
    return (f"# Rendered by keybuzz (module base_os): Docker's repository, its key checked by fingerprint.\n"
            f"deb [signed-by={layout.DOCKER_KEYRING}] {distro.docker_repository} {distro.codename} stable\n")


def build_mismatch(cli: str, version: str, distro: Distro) -> str | None:
    """Why a pinned runtime version is not a build for the servers' OS (None when it is, or cannot tell)."""
    if cli != "docker" or not version:
        return None
    others = [d for d in DISTROS.values() if d.name != distro.name and version.endswith(d.docker_build)]
    if others:
        return f"{version} is Docker's build for {others[0].name}, not for {distro.name} ({distro.docker_build})"
    return None


def docker_daemon() -> str:
    """Bounded container logs (the seed's "daemon configuration"); containers keep running while dockerd
    restarts (an upgrade of the runtime does not stop the databases)."""
    return json.dumps({"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "5"},
                       "live-restore": True}, indent=2) + "\n"
