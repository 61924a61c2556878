"""keybuzz.yaml `base_os:`: who may reach the servers (installer, admins, extra ports), SSH hardening,
DNS, journald, time sync, swap, and whether machine-wide changes are applied or only rendered."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from keybuzz.modules.base_os.distro import DEBIAN_12, DISTROS, Distro
from keybuzz.site.config import Strict
from keybuzz.site.roles import Role
from keybuzz.values import DESCRIPTION, DNS_NAME, HOST, RESOLVER_OPTION, SSHD_PATTERN, ValueKind

# An `installer` entry that means the first address of network.cidr: where the lab's control machine
# sits on its bridge. A Hetzner network's first address is its router, from which nothing connects.
GATEWAY = "gateway"
_SIZE = r"^[1-9][0-9]*[KMG]$"
_IPV4_NETWORK = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:/[0-9]{1,2})?"
# A firewall source: a role, `install`, `load-balancer` or an IPv4 network (checked again as a network).
ALLOW_FROM = ValueKind("a role, install, load-balancer or an IPv4 network", rf"[a-z0-9-]+|{_IPV4_NETWORK}",
                       "e.g. app, monitor, load-balancer or 203.0.113.0/24", max_length=32)
# An `installer` entry: a servers.tsv hostname, an IPv4 address or network, or `gateway`.
INSTALLER = ValueKind(f"a servers.tsv hostname, an IPv4 address or network, or {GATEWAY!r}",
                      rf"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|{_IPV4_NETWORK}", "e.g. install-01, 10.0.0.5 or gateway",
                      max_length=63)


class SshHardening(Strict):
    """Key-only logins, few tries, short grace: what every server's sshd enforces after base_os.

    `allow_users`/`allow_groups` become AllowUsers/AllowGroups (OpenSSH patterns, `user@host` allowed):
    the installer's own `ssh.user` must match them, or the install is refused before any change.
    `from_roles` may SSH to every server besides the installer; `admin_networks` (a VPN, an office)
    may SSH to the install servers (the way in for people: empty by default, `0.0.0.0/0` opens it to all)."""

    allow_users: list[SSHD_PATTERN.type] = Field(default_factory=lambda: ["root"])
    allow_groups: list[SSHD_PATTERN.type] = Field(default_factory=list)
    max_auth_tries: int = Field(default=3, ge=1, le=10)
    login_grace_time_s: int = Field(default=20, ge=5, le=600)
    client_alive_interval_s: int = Field(default=300, ge=0, le=3600)
    from_roles: list[Role] = Field(default_factory=list)
    admin_networks: list[ipaddress.IPv4Network] = Field(default_factory=list)


class OpenPort(Strict):
    """A port a site opens beyond the modules' own (an exporter, a service keybuzz does not install)."""

    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    role: Role  # the servers that listen
    allow_from: list[ALLOW_FROM.type] = Field(default_factory=list)  # roles, `install`, `load-balancer`, networks
    service: DESCRIPTION.type = "site-rule"


class Firewall(Strict):
    open: list[OpenPort] = Field(default_factory=list)


class Dns(Strict):
    """Resolvers come from keybuzz.yaml `dns_servers`. `resolv.conf` writes /etc/resolv.conf (Debian 12's
    default, and what the lab's hosts read); `systemd-resolved` writes a resolved.conf drop-in (Ubuntu
    24.04's, the seed's). Unset: what the servers' OS (base_os.os) runs."""

    manager: Literal["resolv.conf", "systemd-resolved"] | None = None
    search: list[DNS_NAME.type] | None = None  # default: keybuzz.yaml `domain`
    options: list[RESOLVER_OPTION.type] = Field(default_factory=lambda: ["timeout:2", "attempts:2"])


class Journald(Strict):
    system_max_use: str = Field(default="1G", pattern=_SIZE)
    runtime_max_use: str = Field(default="256M", pattern=_SIZE)
    max_retention_days: int = Field(default=30, ge=1, le=3650)


class BaseOsSettings(Strict):
    """`machine_wide: render` (what the lab sets) never applies what acts on the whole machine (swap,
    vm./kernel. sysctls, the clock, packages): it is rendered and checked, and reported as not applied."""

    # The servers' operating system (every server of the site runs the same): Debian 12 runs in the lab,
    # Ubuntu 24.04 (the seed's) is rendered and checked only. A server that runs another is refused.
    os: Literal["debian-12", "ubuntu-24.04"] = DEBIAN_12
    installer: list[INSTALLER.type] = Field(default_factory=list)  # besides the servers with role install
    ssh: SshHardening = SshHardening()
    firewall: Firewall = Firewall()
    dns: Dns = Dns()
    journald: Journald = Journald()
    ntp_servers: list[HOST.type] = Field(default_factory=lambda: ["ntp1.hetzner.de", "ntp2.hetzner.com",
                                                                  "ntp3.hetzner.net"])
    disable_swap: bool = True
    machine_wide: Literal["apply", "render"] = "apply"

    @property
    def distro(self) -> Distro:
        return DISTROS[self.os]

    @property
    def resolver(self) -> str:
        """The DNS manager in force: the one set, or the OS's own."""
        return self.dns.manager or self.distro.resolver

    @field_validator("installer")
    @classmethod
    def _installer_entries(cls, values: list[str]) -> list[str]:
        for value in values:
            if value == GATEWAY:
                continue
            if value[0].isdigit() and value.replace(".", "").replace("/", "").isdigit():
                try:
                    ipaddress.IPv4Network(value, strict=False)
                except ValueError as exc:
                    raise ValueError(f"installer entry {value!r}: {exc}") from None
        return values
