"""Never lock the installer out: what would cut its own way in, said before anything changes. Pure.

Asked of every server before the first change, with what the server itself reports (the address the
installer's SSH connection comes from, the installer user's groups): does the rendered firewall let
that address reach SSH, do AllowUsers/AllowGroups let that user in? And when keybuzz runs on one of
the servers inside an operator's SSH session, can that session's address come back after the change?
"""

from __future__ import annotations

import ipaddress

from keybuzz.modules.base_os import sshd
from keybuzz.modules.base_os.facts import Facts
from keybuzz.modules.base_os.firewall import HostFirewall
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.site import Site


def _local(address: str, server_ip: str) -> bool:
    """A connection to the server's own address arrives on `lo`, which the firewall always accepts."""
    try:
        return address == server_ip or ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False


def host_problems(site: Site, settings: BaseOsSettings, fw: HostFirewall, facts: Facts) -> list[str]:
    port = site.config.ssh.port
    if not facts.installer_ip:
        return ["the server did not say where the installer's SSH connection comes from ($SSH_CONNECTION empty)"]
    problems = []
    if not _local(facts.installer_ip, facts.server_ip) and not fw.allowed("tcp", port, facts.installer_ip):
        problems.append(f"the firewall would drop the installer's SSH from {facts.installer_ip} (only "
                        f"{', '.join(a.source.what for a in fw.allows if a.port == port) or 'nobody'} may reach "
                        f"tcp/{port}): add {facts.installer_ip} to keybuzz.yaml base_os.installer, or run keybuzz "
                        "from a server with role install")
    refusal = sshd.user_allowed(facts.user or site.config.ssh.user, facts.installer_ip, facts.groups,
                                settings.ssh.allow_users, settings.ssh.allow_groups)
    if refusal:
        problems.append(f"sshd would refuse the installer: {refusal}: add it to keybuzz.yaml base_os.ssh.allow_users "
                        "(or allow_groups)")
    return problems


def operator_problems(site: Site, fws: dict[str, HostFirewall], ssh_connection: str) -> list[tuple[str, str]]:
    """keybuzz running on a server of the site inside an SSH session (`$SSH_CONNECTION` here): after the
    change that session's address must still reach that server's SSH, or the operator is locked out."""
    parts = ssh_connection.split()
    if len(parts) < 4:
        return []
    client, local = parts[0], parts[2]
    for server in site.servers:
        if local in (str(server.private_ip), str(server.public_ip or "")):
            fw = fws.get(server.hostname)
            if fw and not _local(client, local) and not fw.allowed("tcp", int(parts[3]), client):
                return [(server.hostname, f"your own SSH session to {server.hostname} comes from {client}; after the "
                         f"change {server.hostname} would drop SSH from it: add {client} (or its network) to "
                         "keybuzz.yaml base_os.ssh.admin_networks")]
    return []
