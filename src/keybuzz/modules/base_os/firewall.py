"""The firewall of one server, built from every module's port declarations. Pure.

Default deny incoming; a port is open only to the sources the declaring module allows (servers.tsv
roles, the installer, the load balancers that forward that port to this server's role), SSH only
from the installer, `ssh.from_roles` and, on install servers, `ssh.admin_networks`. Sources are
named nftables sets of addresses, so the ruleset reads like the declarations and a changed server
shows up as a changed set element in a dry-run diff.

Containers run with `--network host`: their sockets live in the server's own network stack, so
every packet to them crosses the input hook this table filters. A port published with `-p` would
be DNATed to a container address and forwarded instead (the input hook never sees it): keybuzz's
ContainerSpec has no way to publish one, and lint KB023 refuses a container off the host network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from keybuzz.contract import LOAD_BALANCER, Module, Port
from keybuzz.modules.base_os import layout
from keybuzz.modules.base_os.settings import GATEWAY, BaseOsSettings
from keybuzz.site import Site
from keybuzz.site.servers import Server

INSTALL = "install"  # the allow_from token (and servers.tsv role) of the installer
PortTable = Callable[[Site], dict[str, list[tuple[Module, Port]]]]
# ICMPv6 without which IPv6 does not work at all (neighbour discovery), and the ICMP errors that
# path-MTU discovery needs; established/related traffic is accepted before these.
ICMPV6_TYPES = ("destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem",
                "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert")
ICMP_TYPES = ("destination-unreachable", "time-exceeded", "parameter-problem")


@dataclass(frozen=True)
class SourceSet:
    """A named set of source addresses (IPv4 addresses or networks)."""

    name: str
    what: str  # for comments and messages: "role db", "the installer", "load balancer lb-internal"
    addresses: tuple[str, ...]

    @property
    def interval(self) -> bool:
        return any("/" in a for a in self.addresses)

    @cached_property
    def networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        """Parsed once: the probe plan asks every set about every server."""
        return tuple(ipaddress.IPv4Network(a, strict=False) for a in self.addresses)

    def contains(self, address: str) -> bool:
        ip = ipaddress.IPv4Address(address)
        return any(ip in net for net in self.networks)


@dataclass(frozen=True)
class Allow:
    """One accept rule: `protocol dport port ip saddr @source accept`."""

    protocol: str
    port: int
    source: SourceSet
    service: str
    module: str
    token: str  # as declared: a role, install, load-balancer, or a network

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.protocol, self.port, self.source.name)


@dataclass
class HostFirewall:
    hostname: str
    roles: tuple[str, ...]
    allows: list[Allow] = field(default_factory=list)
    echo_from: list[SourceSet] = field(default_factory=list)
    # (protocol, port, service, module, token) declared with no source that exists on this site
    unreachable: list[tuple[str, int, str, str, str]] = field(default_factory=list)

    @property
    def sets(self) -> list[SourceSet]:
        found: dict[str, SourceSet] = {}
        for source in [*(a.source for a in self.allows), *self.echo_from]:
            found.setdefault(source.name, source)
        return sorted(found.values(), key=lambda s: s.name)

    def allowed(self, protocol: str, port: int, address: str) -> list[Allow]:
        """The rules that accept a new connection from `address` to this port."""
        return [a for a in self.allows if a.protocol == protocol and a.port == port and a.source.contains(address)]

    def ports(self) -> list[tuple[str, int]]:
        return sorted({(a.protocol, a.port) for a in self.allows}, key=lambda p: (p[1], p[0]))

    def body(self) -> str:
        """The table's contents (sets and the input chain), without the hash comment."""
        lines: list[str] = []
        for source in self.sets:
            lines += [f"\tset {source.name} {{", "\t\ttype ipv4_addr"]
            if source.interval:
                lines.append("\t\tflags interval")
            lines += [f"\t\telements = {{ {', '.join(source.addresses)} }}", "\t}"]
        lines += [
            "\tchain input {",
            "\t\ttype filter hook input priority filter; policy drop;",
            "\t\tct state established,related accept",
            "\t\tct state invalid drop",
            '\t\tiifname "lo" accept',
            f"\t\tmeta l4proto ipv6-icmp icmpv6 type {{ {', '.join(ICMPV6_TYPES)} }} accept",
            f"\t\tmeta l4proto icmp icmp type {{ {', '.join(ICMP_TYPES)} }} accept",
        ]
        lines += [f'\t\tmeta l4proto icmp icmp type echo-request ip saddr @{s.name} accept comment '
                  f'"{_comment("ping from " + s.what)}"' for s in self.echo_from]
        lines += [f"\t\t{a.protocol} dport {a.port} ip saddr @{a.source.name} accept comment "
                  f'"{_comment(f"{a.service} ({a.module}) from {a.source.what}")}"' for a in self.allows]
        lines.append("\t}")
        return "\n".join(lines) + "\n"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body().encode()).hexdigest()[:16]

    def text(self) -> str:
        """An `nft -f` file that replaces our table atomically (one transaction: the first line makes
        sure the delete finds a table) and leaves every other table alone."""
        header = (f"#!/usr/sbin/nft -f\n# Rendered by keybuzz (module base_os) for {self.hostname} "
                  f"(roles {', '.join(self.roles)}): edits are overwritten on the next install.\n"
                  f"# Default deny incoming; each port open only to the sources its module declares.\n")
        return (f"{header}table inet {layout.TABLE}\ndelete table inet {layout.TABLE}\n"
                f"table inet {layout.TABLE} {{\n\tcomment \"{layout.HASH_MARK}{self.digest}\"\n{self.body()}}}\n")


def _comment(text: str) -> str:
    """nftables comments: at most 128 bytes, no double quote."""
    return text.replace('"', "'")[:120]


def _set_name(prefix: str, name: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}"


def _is_network(token: str) -> bool:
    try:
        ipaddress.IPv4Network(token, strict=False)
    except ValueError:
        return False
    return True


def _network_text(value: str) -> str:
    net = ipaddress.IPv4Network(value, strict=False)
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def installer_addresses(site: Site, settings: BaseOsSettings) -> tuple[str, ...]:
    """Servers with role install, plus keybuzz.yaml `base_os.installer` (hostnames, networks, `gateway`).
    A hostname missing from servers.tsv resolves to nothing (lint KB022 reports it)."""
    found = [str(s.private_ip) for s in site.with_role(INSTALL)]
    hosts = {s.hostname: s for s in site.servers}
    for entry in settings.installer:
        if entry == GATEWAY:
            found.append(str(site.config.network.cidr.network_address + 1))
        elif _is_network(entry):
            found.append(_network_text(entry))
        elif entry in hosts:
            found.append(str(hosts[entry].private_ip))
    return collapsed(found)


def collapsed(addresses: Iterable[str]) -> tuple[str, ...]:
    """Sorted, without overlaps (an interval set refuses overlapping elements): 10.0.0.5 goes when
    10.0.0.0/24 is listed; single addresses stay as they are (never merged into a /31)."""
    nets = [ipaddress.IPv4Network(a, strict=False) for a in addresses]
    wide = list(ipaddress.collapse_addresses(n for n in nets if n.prefixlen < 32))
    singles = {n for n in nets if n.prefixlen == 32 and not any(n.subnet_of(w) for w in wide)}
    return tuple(_network_text(str(n)) for n in sorted([*wide, *singles]))


def _role_set(site: Site, role: str) -> SourceSet | None:
    servers = site.with_role(role)
    if not servers:
        return None
    return SourceSet(_set_name("role", role), f"role {role}", collapsed(str(s.private_ip) for s in servers))


def sources(site: Site, settings: BaseOsSettings, token: str, role: str, port: int) -> list[SourceSet]:
    """What an allow_from token stands for on a server of `role`, for `port` (empty: nothing on this site)."""
    if token == INSTALL:
        addresses = installer_addresses(site, settings)
        return [SourceSet("installer", "the installer", addresses)] if addresses else []
    if token == LOAD_BALANCER:
        return [SourceSet(_set_name("lb", lb.name.removeprefix("lb-")), f"load balancer {lb.name}", (str(lb.vip),))
                for lb in site.config.load_balancers if lb.target_role == role and port in lb.ports]
    if _is_network(token):
        text = _network_text(token)
        return [SourceSet(_set_name("net", text), f"network {text}", (text,))]
    role_set = _role_set(site, token)
    return [role_set] if role_set else []


@dataclass(frozen=True)
class Declared:
    """A port some module (or the site) opens on the servers of a role."""

    protocol: str
    port: int
    service: str
    module: str
    allow_from: tuple[str, ...]


def declared_ports(site: Site, settings: BaseOsSettings, server: Server,
                   table: Sequence[tuple[Module, Port]]) -> list[tuple[str, Declared]]:
    """(role, declaration) of every port this server must open: the modules', SSH and the site's own."""
    ssh_from = (INSTALL, *settings.ssh.from_roles)
    out = [(server.roles[0], Declared("tcp", site.config.ssh.port, "SSH", layout.MODULE, ssh_from))]
    out += [(port.role, Declared(port.protocol, port.number, port.service, module.name, port.allow_from))
            for module, port in table if not port.loopback]
    out += [(extra.role, Declared(extra.protocol, extra.port, extra.service, "site", tuple(extra.allow_from)))
            for extra in settings.firewall.open if server.has(extra.role)]
    return out


def host_firewall(site: Site, settings: BaseOsSettings, server: Server,
                  table: Sequence[tuple[Module, Port]]) -> HostFirewall:
    firewall = HostFirewall(server.hostname, server.roles)
    seen: set[tuple[str, int, str]] = set()
    for role, item in declared_ports(site, settings, server, table):
        for token in item.allow_from:
            found = sources(site, settings, token, role, item.port)
            if not found:
                firewall.unreachable.append((item.protocol, item.port, item.service, item.module, token))
            for source in found:
                allow = Allow(item.protocol, item.port, source, item.service, item.module, token)
                if allow.key not in seen:
                    seen.add(allow.key)
                    firewall.allows.append(allow)
    if server.has(INSTALL) and settings.ssh.admin_networks:
        networks = collapsed(str(n) for n in settings.ssh.admin_networks)
        admins = SourceSet("admin_networks", "the admin networks", networks)
        firewall.allows.insert(0, Allow("tcp", site.config.ssh.port, admins, "SSH", layout.MODULE, "admin_networks"))
    firewall.echo_from = [s for token in (INSTALL, "monitor") for s in sources(site, settings, token, "", 0)]
    firewall.allows.sort(key=lambda a: (a.port, a.protocol, a.source.name))
    return firewall


def firewalls(site: Site, settings: BaseOsSettings,
              table: dict[str, list[tuple[Module, Port]]]) -> dict[str, HostFirewall]:
    return {s.hostname: host_firewall(site, settings, s, table.get(s.hostname, [])) for s in site.servers}


def rules_by_role(fws: Iterable[HostFirewall]) -> dict[str, int]:
    """Accept rules of each role's servers (the largest when a role's servers differ, e.g. several roles)."""
    counts: dict[str, int] = {}
    for fw in fws:
        key = "+".join(fw.roles)
        counts[key] = max(counts.get(key, 0), len(fw.allows) + len(fw.echo_from))
    return dict(sorted(counts.items()))


# -- the live table, as `nft -j list table inet keybuzz_base_os` shows it ---------------------------

@dataclass
class LiveTable:
    present: bool
    policy: str = ""
    hook: str = ""
    allows: set[tuple[str, int, str]] = field(default_factory=set)
    sets: dict[str, set[str]] = field(default_factory=dict)


def _element(value: object) -> str:
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        return f"{prefix['addr']}/{prefix['len']}"
    if isinstance(value, dict) and "range" in value:
        low, high = value["range"]
        return f"{low}-{high}"
    return str(value)


def parse_live(document: dict) -> LiveTable:
    """What the kernel holds: the input chain's hook and policy, accept rules as (proto, port, set), sets."""
    live = LiveTable(present=False)
    for item in document.get("nftables", []):
        if "table" in item:
            live.present = True
        elif "chain" in item and item["chain"].get("name") == "input":
            live.policy, live.hook = item["chain"].get("policy", ""), item["chain"].get("hook", "")
        elif "set" in item:
            elements = item["set"].get("elem", [])
            live.sets[item["set"]["name"]] = {_element(e) for e in elements}
        elif "rule" in item:
            key = _rule_key(item["rule"].get("expr", []))
            if key:
                live.allows.add(key)
    return live


def _rule_key(expressions: list[dict]) -> tuple[str, int, str] | None:
    protocol, port, source, accept = "", 0, "", False
    for expr in expressions:
        match = expr.get("match", {})
        payload = match.get("left", {}).get("payload", {}) if isinstance(match.get("left"), dict) else {}
        if payload.get("field") == "dport" and isinstance(match.get("right"), int):
            protocol, port = payload.get("protocol", ""), match["right"]
        elif payload.get("field") == "saddr" and isinstance(match.get("right"), str):
            source = match["right"].lstrip("@")
        elif "accept" in expr:
            accept = True
    return (protocol, port, source) if protocol and port and source and accept else None


def live_problems(fw: HostFirewall, live: LiveTable) -> list[str]:
    """How the loaded table differs from the rendered one (empty: identical rules and sets)."""
    if not live.present:
        return [f"no table inet {layout.TABLE}"]
    problems = []
    if live.hook != "input" or live.policy != "drop":
        problems.append(f"input chain hook {live.hook or '?'} policy {live.policy or '?'}, wanted input/drop")
    wanted = {a.key for a in fw.allows}
    for key in sorted(wanted - live.allows):
        problems.append(f"missing {key[0]}/{key[1]} from @{key[2]}")
    for key in sorted(live.allows - wanted):
        problems.append(f"extra {key[0]}/{key[1]} from @{key[2]}")
    for source in fw.sets:
        if live.sets.get(source.name) != set(source.addresses):
            problems.append(f"set {source.name} holds {sorted(live.sets.get(source.name, set()))}, wanted "
                            f"{list(source.addresses)}")
    return problems
