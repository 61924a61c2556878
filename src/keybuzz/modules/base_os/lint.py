"""The module's lint rules: every open port says who may reach it, firewall rules name roles that servers
have, the installer is a known server, containers stay behind the firewall. Each hit is `file:line`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from keybuzz.contract import LOAD_BALANCER, Hit, LintInput, Rule
from keybuzz.modules.base_os import runtime
from keybuzz.modules.base_os.firewall import INSTALL, PortTable, installer_addresses
from keybuzz.modules.base_os.settings import GATEWAY, BaseOsSettings
from keybuzz.site import Site
from keybuzz.site.loader import CONFIG_FILE, SERVERS_FILE, VERSIONS_FILE, located_config
from keybuzz.site.servers import ROLES
from keybuzz.site.yamlfile import LocatedYaml

TOKENS = (INSTALL, LOAD_BALANCER)


def _where(located: LocatedYaml | None, *path: str | int) -> str:
    return f"{CONFIG_FILE}:{located.line_of(('base_os', *path)) if located else 1}"


def _is_network(token: str) -> bool:
    return token.count(".") == 3 and all(part.split("/")[0].isdigit() for part in token.split("."))


def check_declared_reachability(table: PortTable) -> Callable[[LintInput], Iterable[Hit]]:
    def check(data: LintInput) -> Iterable[Hit]:
        seen: set[tuple[str, str, int]] = set()
        for entries in table(data.site).values():
            for module, port in entries:
                key = (module.name, port.role, port.number)
                if not port.loopback and not port.allow_from and key not in seen:
                    seen.add(key)
                    yield f"module {module.name}", \
                        f"{port.protocol}/{port.number} ({port.service}) on role {port.role} is open with no " \
                        "declared reachability (allow_from is empty)", \
                        "declare the roles that may reach it (Port allow_from), or bind it to 127.0.0.1 (loopback=True)"
        settings = data.site.settings(BaseOsSettings)
        located = located_config(data.site.root)
        for index, extra in enumerate(settings.firewall.open):
            if not extra.allow_from:
                yield _where(located, "firewall", "open", index), \
                    f"{extra.protocol}/{extra.port} on role {extra.role} is opened with no declared reachability", \
                    "list who may reach it in allow_from (roles, install, load-balancer or IPv4 networks)"
    return check


def _role_problem(site: Site, role: str) -> str | None:
    if role not in ROLES:
        return f"{role!r} is not a role (roles: {', '.join(ROLES)})"
    if not site.with_role(role):
        return f"no server in {SERVERS_FILE} has role {role}"
    return None


def check_roles_exist(data: LintInput) -> Iterable[Hit]:
    site = data.site
    settings = site.settings(BaseOsSettings)
    located = located_config(site.root)
    for index, extra in enumerate(settings.firewall.open):
        problem = _role_problem(site, extra.role)
        if problem:
            yield _where(located, "firewall", "open", index, "role"), \
                f"firewall.open {extra.protocol}/{extra.port} listens on role {extra.role}: {problem}", \
                "name a role of servers.tsv, or remove the rule"
        for position, token in enumerate(extra.allow_from):
            problem = None if token in TOKENS or _is_network(token) else _role_problem(site, token)
            if problem:
                yield _where(located, "firewall", "open", index, "allow_from", position), \
                    f"firewall.open {extra.protocol}/{extra.port} allows {token!r}: {problem}", \
                    "use a role servers have, install, load-balancer or an IPv4 network (10.0.5.0/24)"
    for position, role in enumerate(settings.ssh.from_roles):
        problem = _role_problem(site, role)
        if problem:
            yield _where(located, "ssh", "from_roles", position), f"ssh.from_roles {role!r}: {problem}", \
                "name a role of servers.tsv, or remove it"


def check_installer_known(data: LintInput) -> Iterable[Hit]:
    site = data.site
    settings = site.settings(BaseOsSettings)
    located = located_config(site.root)
    names = {s.hostname for s in site.servers}
    for position, entry in enumerate(settings.installer):
        if entry != GATEWAY and not _is_network(entry) and entry not in names:
            yield _where(located, "installer", position), f"installer {entry!r} is missing from {SERVERS_FILE}", \
                f"add {entry} to {SERVERS_FILE} (with role install), or list its address instead"
    if not installer_addresses(site, settings):
        yield f"{SERVERS_FILE}:1", "no server has role install and keybuzz.yaml base_os.installer is empty: after " \
            "base_os no address may open SSH to the servers", \
            "add the server keybuzz runs on with role install, or its address to base_os.installer"


def check_host_network(data: LintInput) -> Iterable[Hit]:
    for host, plan in data.plans.items():
        for container in plan.containers:
            if not container.network_host:
                yield f"render {host}: {container.name}", "container off the host network: its ports would be " \
                    "NATed and forwarded past the input firewall", "run it with --network host (ContainerSpec default)"


def check_public_ssh(data: LintInput) -> Iterable[Hit]:
    """Install servers with a public address: after base_os their SSH is as open as admin_networks says."""
    networks = data.site.settings(BaseOsSettings).ssh.admin_networks
    for server in data.site.with_role(INSTALL):
        if not server.public_ip:
            continue
        if any(net.prefixlen == 0 for net in networks):
            yield f"{SERVERS_FILE}:{server.line}", f"{server.hostname} ({server.public_ip}) accepts SSH from " \
                "anywhere (key only): base_os.ssh.admin_networks holds 0.0.0.0/0", \
                "narrow base_os.ssh.admin_networks to your VPN or office network"
        elif not networks:
            yield f"{SERVERS_FILE}:{server.line}", f"after base_os, {server.hostname} drops SSH to its public " \
                f"address {server.public_ip}: base_os.ssh.admin_networks is empty", \
                "list your VPN or office network there, or keep the provider's console as the way in"


def check_os_settings(data: LintInput) -> Iterable[Hit]:
    """What base_os renders for the servers' OS fits it: Docker's build, a podman pin, the resolver."""
    site = data.site
    settings = site.settings(BaseOsSettings)
    distro, cli = settings.distro, site.config.container_cli
    pinned = site.versions.software.get(cli, "")

    def where_pin() -> str:  # versions.yaml is read again for its lines only when there is a finding
        versions = located_config(site.root, VERSIONS_FILE)
        return f"{VERSIONS_FILE}:{versions.line_of(('software', cli)) if versions else 1}"

    mismatch = runtime.build_mismatch(cli, pinned, distro)
    if mismatch:
        yield where_pin(), f"software.{cli}: {mismatch}", \
            f"pin {distro.docker_version(runtime.DOCKER_ENGINE)} (or the {distro.docker_build} build you tested)"
    if not pinned and runtime.default_version(cli, distro) is None:
        yield where_pin(), f"no {cli} version is pinned, and keybuzz knows none for {distro.name}", \
            f"pin the {distro.name} package's version in versions.yaml software.{cli} (`apt-cache policy {cli}` " \
            "on a server shows it)"
    if settings.dns.manager and settings.dns.manager != distro.resolver:
        yield _where(located_config(site.root), "dns", "manager"), \
            f"dns.manager {settings.dns.manager} on {distro.name}, whose servers run {distro.resolver}: " + (
                "writing /etc/resolv.conf would replace its link to systemd-resolved's stub"
                if distro.resolver == "systemd-resolved" else "no systemd-resolved runs there to read a drop-in"), \
            f"remove dns.manager (the OS's own: {distro.resolver}) or set it to {distro.resolver}"


def rules(table: PortTable) -> tuple[Rule, ...]:
    return (
        Rule("KB020", "error", "every open port declares who may reach it", check_declared_reachability(table)),
        Rule("KB021", "error", "firewall rules name roles that servers have", check_roles_exist),
        Rule("KB022", "error", "the installer is a known server", check_installer_known),
        Rule("KB023", "error", "containers run on the host network (behind the firewall)", check_host_network),
        Rule("KB024", "info", "who may SSH to the install servers' public address", check_public_ssh),
        Rule("KB027", "error", "the container runtime's pin and the resolver fit the servers' OS", check_os_settings),
    )
