"""keybuzz.yaml `base_os:`: who may reach the servers (installer, admins, extra ports), SSH hardening,
DNS, journald, time sync, swap, and whether machine-wide changes are applied or only rendered."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from keybuzz.site.config import Strict

# An `installer` entry that means the first address of network.cidr: where the lab's control machine
# sits on its bridge. A Hetzner network's first address is its router, from which nothing connects.
GATEWAY = "gateway"
_SIZE = r"^[1-9][0-9]*[KMG]$"


class SshHardening(Strict):
    """Key-only logins, few tries, short grace: what every server's sshd enforces after base_os.

    `allow_users`/`allow_groups` become AllowUsers/AllowGroups (OpenSSH patterns, `user@host` allowed):
    the installer's own `ssh.user` must match them, or the install is refused before any change.
    `from_roles` may SSH to every server besides the installer; `admin_networks` (a VPN, an office)
    may SSH to the install servers (the way in for people: empty by default, `0.0.0.0/0` opens it to all)."""

    allow_users: list[str] = Field(default_factory=lambda: ["root"])
    allow_groups: list[str] = Field(default_factory=list)
    max_auth_tries: int = Field(default=3, ge=1, le=10)
    login_grace_time_s: int = Field(default=20, ge=5, le=600)
    client_alive_interval_s: int = Field(default=300, ge=0, le=3600)
    from_roles: list[str] = Field(default_factory=list)
    admin_networks: list[ipaddress.IPv4Network] = Field(default_factory=list)

    @field_validator("allow_users", "allow_groups")
    @classmethod
    def _patterns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value or any(c.isspace() or c in "\"'#" for c in value):
                raise ValueError(f"{value!r} is not an sshd user/group pattern (no spaces, quotes or #)")
        return values


class OpenPort(Strict):
    """A port a site opens beyond the modules' own (an exporter, a service keybuzz does not install)."""

    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    role: str  # the servers that listen
    allow_from: list[str] = Field(default_factory=list)  # roles, `install`, `load-balancer` or IPv4 networks
    service: str = Field(default="site rule", pattern=r"^[A-Za-z0-9 ._()/+-]{1,60}$")


class Firewall(Strict):
    open: list[OpenPort] = Field(default_factory=list)


class Dns(Strict):
    """Resolvers come from keybuzz.yaml `dns_servers`. `resolv.conf` writes /etc/resolv.conf (Debian 12's
    default, and what the lab's hosts read); `systemd-resolved` writes a resolved.conf drop-in (the seed's)."""

    manager: Literal["resolv.conf", "systemd-resolved"] = "resolv.conf"
    search: list[str] | None = None  # default: keybuzz.yaml `domain`
    options: list[str] = Field(default_factory=lambda: ["timeout:2", "attempts:2"])


class Journald(Strict):
    system_max_use: str = Field(default="1G", pattern=_SIZE)
    runtime_max_use: str = Field(default="256M", pattern=_SIZE)
    max_retention_days: int = Field(default=30, ge=1, le=3650)


class BaseOsSettings(Strict):
    """`machine_wide: render` (what the lab sets) never applies what acts on the whole machine (swap,
    vm./kernel. sysctls, the clock, packages): it is rendered and checked, and reported as not applied."""

    installer: list[str] = Field(default_factory=list)  # besides the servers with role install
    ssh: SshHardening = SshHardening()
    firewall: Firewall = Firewall()
    dns: Dns = Dns()
    journald: Journald = Journald()
    ntp_servers: list[str] = Field(default_factory=lambda: ["ntp1.hetzner.de", "ntp2.hetzner.com",
                                                            "ntp3.hetzner.net"])
    disable_swap: bool = True
    machine_wide: Literal["apply", "render"] = "apply"

    @field_validator("installer")
    @classmethod
    def _installer_entries(cls, values: list[str]) -> list[str]:
        for value in values:
            if value == GATEWAY:
                continue
            try:
                ipaddress.IPv4Network(value, strict=False)
            except ValueError:
                if not value.replace("-", "").isalnum() or value != value.lower():
                    raise ValueError(f"installer entry {value!r}: a servers.tsv hostname, an IPv4 address or "
                                     f"network, or {GATEWAY!r}") from None
        return values
