"""The operating systems base_os renders for, and what differs between them: Docker's apt repository and
the name of its builds, the resolver a fresh server runs, and how a server says what it is (/etc/os-release).

Debian 12 is what the lab runs (its hosts are Debian trees). Ubuntu 24.04, the seed's, is rendered and
checked by unit tests only: no Ubuntu mirror is reachable from here, so no Ubuntu server ever ran it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEBIAN_12 = "debian-12"
UBUNTU_24_04 = "ubuntu-24.04"


@dataclass(frozen=True)
class Distro:
    name: str  # keybuzz.yaml base_os.os
    os_id: str  # /etc/os-release ID
    version_id: str  # /etc/os-release VERSION_ID
    codename: str  # apt suite of Docker's repository
    docker_build: str  # what Docker's builds for it carry in their version: 5:27.5.1-1~<docker_build>
    # apt version of podman from the distribution; None: not known here, versions.yaml software.podman must say
    podman: str | None
    # What owns /etc/resolv.conf on a fresh server: Ubuntu links it to systemd-resolved's stub, and
    # replacing that link would take the resolver away from resolved.
    resolver: str

    @property
    def docker_repository(self) -> str:
        return f"https://download.docker.com/linux/{self.os_id}"

    def docker_version(self, engine: str) -> str:
        """The apt version of Docker's build of `engine` (e.g. 27.5.1) for this OS."""
        return f"5:{engine}-1~{self.docker_build}"


DISTROS = {
    DEBIAN_12: Distro(DEBIAN_12, "debian", "12", "bookworm", "debian.12~bookworm", "4.3.1+ds1-8+deb12u1+b3",
                      "resolv.conf"),
    UBUNTU_24_04: Distro(UBUNTU_24_04, "ubuntu", "24.04", "noble", "ubuntu.24.04~noble", None, "systemd-resolved"),
}
DOCKER_ENGINE = "27.5.1"


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release (os-release(5): KEY=value, the value optionally quoted)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[key] = value
    return values


def detected(os_release: dict[str, str]) -> str:
    """The keybuzz name of the OS a server runs (`debian-12`), or what it says it is when keybuzz does not
    know it (`centos 9`), or "" when it says nothing."""
    os_id, version = os_release.get("ID", ""), os_release.get("VERSION_ID", "")
    known = next((d.name for d in DISTROS.values() if (d.os_id, d.version_id) == (os_id, version)), None)
    return known or f"{os_id} {version}".strip()
