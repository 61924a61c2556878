"""The container runtime at its pinned version (production only: a package install acts on the whole
machine). Docker comes from Docker's own apt repository, whose key is refused unless it has Docker's
published fingerprint (the seed ran `curl | sh` unpinned); podman from Debian. Both are held."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from keybuzz.images import SoftwarePin
from keybuzz.modules.base_os import layout
from keybuzz.site import Site

DOCKER_KEY_URL = "https://download.docker.com/linux/debian/gpg"
DOCKER_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
# versions.yaml `software:`: apt versions (Debian's epoch and revision included), never "latest".
SOFTWARE = (SoftwarePin("docker", "5:27.5.1-1~debian.12~bookworm"),
            SoftwarePin("podman", "4.3.1+ds1-8+deb12u1+b3"))


@dataclass(frozen=True)
class Runtime:
    cli: str
    packages: tuple[str, ...]  # pinned and held
    extra: tuple[str, ...]  # installed with them, unpinned (Docker's containerd)
    version: str

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
                f"if [ ! -s {keyring} ]; then curl -fsSL {q(DOCKER_KEY_URL)} -o {tmp}; "
                f"gpg --show-keys --with-colons {tmp} | awk -F: '$1==\"fpr\"{{print $10}}' | "
                f"grep -qx {DOCKER_KEY_FINGERPRINT} || {{ rm -f {tmp}; echo \"Docker's apt key does not have "
                f"fingerprint {DOCKER_KEY_FINGERPRINT}\" >&2; exit 1; }}; chmod 0644 {tmp}; mv {tmp} {keyring}; fi",
                "apt-get update -q",
            ]
        lines += [f"apt-get install -y -q {wanted} {' '.join(self.extra)}".rstrip(),
                  f"apt-mark hold {' '.join(self.packages)} >/dev/null"]
        return "\n".join(lines) + "\n"


def runtime(site: Site) -> Runtime:
    cli = site.config.container_cli
    default = {pin.key: pin.version for pin in SOFTWARE}[cli]
    version = site.versions.software.get(cli, default)
    if cli == "docker":
        return Runtime(cli, ("docker-ce", "docker-ce-cli"), ("containerd.io",), version)
    return Runtime(cli, ("podman",), (), version)


def docker_list() -> str:
    return (f"# Rendered by keybuzz (module base_os): Docker's repository, its key checked by fingerprint.\n"
            f"deb [signed-by={layout.DOCKER_KEYRING}] https://download.docker.com/linux/debian bookworm stable\n")


def docker_daemon() -> str:
    """Bounded container logs (the seed's "daemon configuration"); containers keep running while dockerd
    restarts (an upgrade of the runtime does not stop the databases)."""
    return json.dumps({"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "5"},
                       "live-restore": True}, indent=2) + "\n"
