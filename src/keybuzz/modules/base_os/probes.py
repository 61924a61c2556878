"""The reachability matrix: for every open port of every server, try it from a server of each role (and
from the installer) and compare with what the declarations allow. Planning and parsing are pure.

A probe is a real TCP connect from the source's own network stack: sources that are servers run a
short Python program over SSH (all their probes at once), the installer runs it on this machine.
An allowed source must reach the server's kernel (an accepted connection, or a reset when nothing
listens yet); a forbidden one must get silence (the policy drops, it never answers). Through a load
balancer, a connection must stay open (the balancer found a server behind it) instead of being closed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from keybuzz.modules.base_os.firewall import HostFirewall
from keybuzz.site import Site

INSTALLER = "installer"  # the source name of probes run from this machine
CONNECT_TIMEOUT_S = 2.0
HOLD_S = 2.0  # through a load balancer: a connection still open after this found a server behind it
CLIENT_ROLES = ("app", "k3s-worker", "k3s-master")
REACHED = ("open", "refused")


@dataclass(frozen=True)
class Probe:
    source: str  # a hostname, or INSTALLER
    source_role: str
    target: str  # a hostname, or a load balancer's name
    address: str
    port: int
    expect: str  # reach | blocked | through
    label: str  # the matrix row: "db tcp/5432 PostgreSQL (postgres)"


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    result: str  # open, refused, timeout, unreachable, held, data, closed, or "error: ..."

    @property
    def ok(self) -> bool:
        if self.probe.expect == "reach":
            return self.result in REACHED
        if self.probe.expect == "blocked":
            return self.result == "timeout"
        return self.result in ("held", "data")


def _label(fw: HostFirewall, port: int) -> str:
    services = sorted({f"{a.service} ({a.module})" for a in fw.allows if a.port == port and a.protocol == "tcp"})
    return f"{'+'.join(fw.roles)} tcp/{port} {', '.join(services)}"


def _allowed(fw: HostFirewall, port: int, address: str, target_ip: str) -> bool:
    return address == target_ip or bool(fw.allowed("tcp", port, address))


def plan(site: Site, fws: dict[str, HostFirewall], installer_ips: dict[str, str]) -> list[Probe]:
    """Per server and open TCP port: one source of each role that may reach it and one of each role that
    may not (rotating over each role's servers), and the installer. `installer_ips`: the installer's
    address as each server sees it."""
    probes: list[Probe] = []
    roles = [r for r in dict.fromkeys(role for s in site.servers for role in s.roles)]
    for index, server in enumerate(site.servers):
        fw, ip = fws[server.hostname], str(server.private_ip)
        for protocol, port in fw.ports():
            if protocol != "tcp":
                continue  # UDP has no handshake to tell a drop from a silent service
            label = _label(fw, port)
            for role in roles:
                others = [s for s in site.with_role(role) if s.hostname != server.hostname]
                allowed = [s for s in others if _allowed(fw, port, str(s.private_ip), ip)]
                for expect, group in (("reach", allowed), ("blocked", [s for s in others if s not in allowed])):
                    if group:
                        source = group[(index + port) % len(group)]
                        probes.append(Probe(source.hostname, role, server.hostname, ip, port, expect, label))
            seen_from = installer_ips.get(server.hostname, "")
            if seen_from:
                expect = "reach" if _allowed(fw, port, seen_from, ip) else "blocked"
                probes.append(Probe(INSTALLER, "install", server.hostname, ip, port, expect, label))
    for lb in site.config.load_balancers:
        clients = [s for role in CLIENT_ROLES for s in site.with_role(role)]
        if not site.with_role(lb.target_role):
            continue
        for port in lb.ports:
            source = clients[port % len(clients)] if clients else None
            probes.append(Probe(source.hostname if source else INSTALLER, source.roles[0] if source else "install",
                                lb.name, str(lb.vip), port, "through",
                                f"client -> {lb.name} {lb.vip}:{port} -> {lb.target_role}"))
    return probes


def toward(site: Site, planned: Sequence[Probe], hosts: Collection[str]) -> list[Probe]:
    """The probes that try these servers' firewalls: to one of them, or through a load balancer in front of
    one of them (what an install re-proves after changing the rules of some servers only)."""
    roles = {lb.name: lb.target_role for lb in site.config.load_balancers}
    behind = {name for name, role in roles.items() if any(s.hostname in hosts for s in site.with_role(role))}
    return [p for p in planned if p.target in hosts or p.target in behind]


# -- running them ---------------------------------------------------------------------------------

# One process per source connects to every target at once, each connect bounded on its own: a shell
# job per probe (bash + timeout) measured process start-up as well, and on a busy machine an allowed
# connection could look dropped. Python 3.9+ (Debian 11 and later); also run locally for the installer.
PROGRAM = r"""
import asyncio, errno, sys
T, H = float(sys.argv[1]), float(sys.argv[2])
async def one(i, kind, host, port):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), T)
    except asyncio.TimeoutError:
        return i, "timeout"
    except ConnectionRefusedError:
        return i, "refused"
    except OSError as exc:
        return i, "unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "error: %s" % exc
    try:
        if kind != "through":
            return i, "open"
        try:
            data = await asyncio.wait_for(reader.read(1), H)
        except asyncio.TimeoutError:
            return i, "held"
        except OSError:
            return i, "closed"
        return i, "data" if data else "closed"
    finally:
        writer.close()
async def main():
    jobs = [one(*line.split()) for line in sys.stdin if line.strip()]
    for i, result in await asyncio.gather(*jobs):
        print(i, result, sep="\t")
asyncio.run(main())
"""


def argv(python: str = "python3") -> list[str]:
    return [python, "-c", PROGRAM, f"{CONNECT_TIMEOUT_S:g}", f"{HOLD_S:g}"]


def stdin(probes: Sequence[Probe]) -> str:
    """One line per probe: index, kind, address, port."""
    return "".join(f"{i} {p.expect} {p.address} {p.port}\n" for i, p in enumerate(probes))


def parse(probes: Sequence[Probe], output: str) -> list[Outcome]:
    found: dict[int, str] = {}
    for line in output.splitlines():
        index, _, result = line.partition("\t")
        if index.isdigit() and int(index) < len(probes) and result:
            found[int(index)] = result.strip()
    return [Outcome(p, found.get(i, "error: no answer from the probe program")) for i, p in enumerate(probes)]


def by_source(probes: Sequence[Probe]) -> dict[str, list[Probe]]:
    groups: dict[str, list[Probe]] = {}
    for probe in probes:
        groups.setdefault(probe.source, []).append(probe)
    return groups


def listening_behind(outcomes: Sequence[Outcome], site: Site, role: str, port: int) -> bool:
    """Some server of `role` accepted a direct connection to `port` (a service listens behind the balancer)."""
    addresses = {str(s.private_ip) for s in site.with_role(role)}
    return any(o.result == "open" and o.probe.address in addresses and o.probe.port == port for o in outcomes)
