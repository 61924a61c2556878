"""`keybuzz validate base_os`: the seed's five checks and what a security review adds.

The firewall is loaded on every server and is exactly the rendered one (hook, drop policy, rules,
sets); the reachability matrix, tried for real from other servers and from the installer; password
logins refused while key logins work (a fresh login, not the run's open one); sshd's settings in
force; DNS as the site says; sysctls live. What acts on the whole machine (swap, vm./kernel./fs.
sysctls, the clock, packages) is checked where it is applied and reported as not applied elsewhere.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Sequence

import asyncssh

from keybuzz.concurrency import gather_bounded
from keybuzz.contract import CheckResult, DeployContext
from keybuzz.modules.base_os import layout, probes, render, runtime, sshd, sysctl
from keybuzz.modules.base_os.deploy import FACTS, MACHINE_WIDE_NOTE, fresh_login, machine_wide, other_os, read_facts
from keybuzz.modules.base_os.facts import Facts
from keybuzz.modules.base_os.firewall import HostFirewall, live_problems, parse_live
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.poll import describe
from keybuzz.remote.ssh import SshSettings
from keybuzz.site import Site

MAX_CLOCK_SKEW_S = 2.0


def _summary(bad: dict[str, str], total: int, good: str) -> str:
    if not bad:
        return good
    shown = "; ".join(f"{host}: {why}" for host, why in list(bad.items())[:6])
    return f"{len(bad)}/{total} server(s): {shown}" + (" ..." if len(bad) > 6 else "")


def check_firewall(fws: dict[str, HostFirewall], facts: dict[str, Facts]) -> CheckResult:
    bad = {}
    for host, fw in fws.items():
        problems = live_problems(fw, parse_live(facts[host].ruleset))
        if not problems and facts[host].table_hash != fw.digest:
            problems = [f"loaded {facts[host].table_hash or 'nothing'}, rendered {fw.digest}"]
        if problems:
            bad[host] = ", ".join(problems[:3])
    rules = sum(len(fw.allows) for fw in fws.values())
    return CheckResult(f"firewall active on every server (default drop, {rules} accept rules as rendered)", not bad,
                       _summary(bad, len(fws), f"{len(fws)} servers: table inet {layout.TABLE} loaded and current"))


async def _probe_from(ctx: DeployContext, source: str, group: list[probes.Probe]) -> list[probes.Outcome]:
    """All of one source's probes in one process: on the server over SSH, or here for the installer."""
    try:
        if source == probes.INSTALLER:
            proc = await asyncio.create_subprocess_exec(*probes.argv(sys.executable), stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(proc.communicate(probes.stdin(group).encode()), 60)
            return probes.parse(group, out.decode())
        result = await ctx.host(source).run(probes.argv(), check=False, timeout=60, stdin=probes.stdin(group))
    except Exception as exc:  # an unreachable source: every probe of it says so
        return [probes.Outcome(p, f"error: {describe(exc)}") for p in group]
    return probes.parse(group, result.stdout)


RETRY_PAUSE_S = 3.0


async def run_matrix(ctx: DeployContext, planned: Sequence[probes.Probe]) -> list[probes.Outcome]:
    """Every probe, each source's at once; a probe that should have passed and did not is tried once more
    after a pause (a busy machine can delay a handshake; a drop stays a drop). Seen on the 40-server
    lab right after a deploy: 8 of 1,917 allowed connects timed out twice without the pause."""
    async def round_of(batch: Sequence[probes.Probe]) -> list[probes.Outcome]:
        groups = probes.by_source(batch)
        done = await gather_bounded(ctx.site.config.ssh.parallelism, lambda item: _probe_from(ctx, *item),
                                    groups.items())
        return [o for outcomes in done for o in outcomes]

    first = await round_of(planned)
    again = [o.probe for o in first if not o.ok and o.probe.expect != "blocked"]
    if not again:
        return first
    await asyncio.sleep(RETRY_PAUSE_S)
    retried = {o.probe: o for o in await round_of(again)}
    return [retried.get(o.probe, o) for o in first]


def matrix_results(site: Site, outcomes: Sequence[probes.Outcome]) -> list[CheckResult]:
    """One row per (roles, port): who reached it and who was dropped; through each load balancer port."""
    rows: dict[str, list[probes.Outcome]] = {}
    for outcome in outcomes:
        rows.setdefault(outcome.probe.label, []).append(outcome)
    results = []
    for label, group in rows.items():
        through = [o for o in group if o.probe.expect == "through"]
        if through:
            lb = next(b for b in site.config.load_balancers if b.name == through[0].probe.target)
            port = through[0].probe.port
            if not probes.listening_behind(outcomes, site, lb.target_role, port):
                results.append(CheckResult(label, False, f"nothing listens on tcp/{port} on the {lb.target_role} "
                                           "servers yet (its module is not installed)", available=False))
                continue
        unexpected = [o for o in group if not o.ok]
        reached = sorted({o.probe.source_role for o in group if o.probe.expect == "reach"})
        dropped = sorted({o.probe.source_role for o in group if o.probe.expect == "blocked"})
        if through:
            detail = ", ".join(f"{o.probe.source} {o.result}" for o in group)
        else:
            detail = f"reached from {', '.join(reached) or 'nobody'}; dropped from {', '.join(dropped) or 'nobody'}"
        if unexpected:
            detail = "UNEXPECTED " + "; ".join(f"{o.probe.source} -> {o.probe.target}:{o.probe.port} {o.result} "
                                               f"(wanted {o.probe.expect})" for o in unexpected[:5]) + f" | {detail}"
        results.append(CheckResult(label, not unexpected, detail))
    return results


class _PasswordProbe(asyncssh.SSHClient):
    """Records whether the server offered password or keyboard-interactive logins at all."""

    offered: list[str]

    def __init__(self) -> None:
        self.offered = []

    def password_auth_requested(self) -> str:
        self.offered.append("password")
        return "wrong-" + secrets.token_hex(8)

    def kbdint_auth_requested(self) -> str:
        self.offered.append("keyboard-interactive")
        return ""


async def password_offered(site: Site, address: str) -> str:
    """"" when the server refused without offering any password method, else what happened."""
    ssh = SshSettings.from_site(site)
    known = asyncssh.read_known_hosts(str(ssh.known_hosts)) if ssh.known_hosts else None
    probe = _PasswordProbe()
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            address, ssh.port, username=ssh.user, client_keys=None, known_hosts=known, agent_path=None,
            preferred_auth="password,keyboard-interactive", client_factory=lambda: probe, config=None,
            connect_timeout=ssh.connect_timeout), ssh.connect_timeout + 2)
    except asyncssh.PermissionDenied:
        return f"offered {', '.join(probe.offered)}" if probe.offered else ""
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        return f"no answer: {describe(exc)}"
    conn.close()
    return "a password login succeeded"


async def check_ssh(ctx: DeployContext, servers: list[str]) -> list[CheckResult]:
    """A password login refused and a fresh key login accepted, on each of these servers."""
    site = ctx.site
    if not servers:
        return [CheckResult("SSH logins", True, "not tried: this install changed no server's sshd", available=False)]

    async def one(hostname: str) -> tuple[str, str]:
        offered = await password_offered(site, str(site.server(hostname).private_ip))
        try:
            await fresh_login(site, hostname)
            key = ""
        except Exception as exc:
            key = describe(exc)
        return offered, key

    answers = dict(zip(servers, await gather_bounded(site.config.ssh.parallelism, one, servers), strict=True))
    refused = {h: a[0] for h, a in answers.items() if a[0]}
    keys = {h: a[1] for h, a in answers.items() if a[1]}
    return [CheckResult("password SSH login refused (no password method offered)", not refused,
                        _summary(refused, len(servers), f"{len(servers)} servers: publickey only")),
            CheckResult(f"key SSH login works (a fresh login as {site.config.ssh.user})", not keys,
                        _summary(keys, len(servers), f"{len(servers)} servers"))]


def check_sshd(settings: BaseOsSettings, facts: dict[str, Facts]) -> CheckResult:
    bad = {h: f.sshd_error or ", ".join(sshd.effective_problems(settings.ssh, f.effective)) for h, f in facts.items()
           if f.sshd_error or sshd.effective_problems(settings.ssh, f.effective)}
    return CheckResult(f"sshd settings in force (sshd -T): key only, root prohibit-password, MaxAuthTries "
                       f"{settings.ssh.max_auth_tries}, AllowUsers {' '.join(settings.ssh.allow_users) or '-'}",
                       not bad, _summary(bad, len(facts), f"{len(facts)} servers"))


def _resolvers(text: str) -> tuple[list[str], list[str]]:
    servers, search = [], []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
    return servers, search


def check_dns(site: Site, settings: BaseOsSettings, facts: dict[str, Facts]) -> CheckResult:
    wanted = [str(ip) for ip in site.config.dns_servers]
    domains = render.search_domains(site, settings)
    bad = {}
    for host, f in facts.items():
        if settings.resolver == "systemd-resolved":
            if f.resolved_dns != wanted:
                bad[host] = f"systemd-resolved's global servers {f.resolved_dns or 'none'}"
            continue
        servers, search = _resolvers(f.resolv_conf)
        if servers != wanted or search != domains:
            bad[host] = f"nameservers {servers or 'none'}, search {search or 'none'}"
    return CheckResult(f"DNS in force: nameservers {', '.join(wanted)}, search {' '.join(domains) or '-'}",
                       not bad, _summary(bad, len(facts), f"{len(facts)} servers ({settings.resolver})"))


def check_sysctls(site: Site, facts: dict[str, Facts]) -> CheckResult:
    bad = {}
    for host, f in facts.items():
        differ = [f"{k}={f.sysctls.get(k, '?')}" for k, v in sysctl.net(site.server(host)).items()
                  if f.sysctls.get(k) != sysctl.normal(v)]
        if differ:
            bad[host] = ", ".join(differ[:4])
    return CheckResult(f"net.* sysctls in force ({len(sysctl.NET)} keys, each server's own network stack)", not bad,
                       _summary(bad, len(facts), f"{len(facts)} servers"))


def machine_results(site: Site, settings: BaseOsSettings, facts: dict[str, Facts],
                    skew: dict[str, float | None]) -> list[CheckResult]:
    """Applied where machine-wide changes apply; elsewhere the same facts, reported as not applied."""
    applied = {h: f for h, f in facts.items() if machine_wide(settings, f)}
    other = {h: f for h, f in facts.items() if h not in applied}
    results: list[CheckResult] = []
    chosen = runtime.runtime(site)
    checks = {
        "swap off": lambda h, f: f"swap on {', '.join(f.swaps)}" if settings.disable_swap and f.swaps else "",
        "machine-wide sysctls (vm., kernel., fs.)": lambda h, f: ", ".join(
            f"{k}={f.sysctls.get(k, '?')} (wanted {v})" for k, v in sysctl.machine(site.server(h)).items()
            if f.sysctls.get(k) != sysctl.normal(v))[:200],
        "time synchronised (NTP)": lambda h, f: "" if f.ntp_synchronized == "yes" else
            f"NTPSynchronized={f.ntp_synchronized or '?'}",
        f"container runtime {chosen.cli} {chosen.version}": lambda h, f: ", ".join(
            f"{p} {f.packages.get(p, 'absent')}" for p in chosen.packages if f.packages.get(p) != chosen.version),
    }
    for name, problem in checks.items():
        if applied:
            bad = {h: why for h, f in applied.items() if (why := problem(h, f))}
            results.append(CheckResult(name, not bad, _summary(bad, len(applied), f"{len(applied)} servers")))
        if other:
            sample_host, sample = next(iter(other.items()))
            seen = problem(sample_host, sample) or ("no swap active" if name == "swap off" else "as wanted")
            if name.startswith("time"):
                seen = f"the clock is the machine's, {skew.get(sample_host, 0) or 0:+.2f} s from this machine"
            results.append(CheckResult(name, False, f"{MACHINE_WIDE_NOTE} on {len(other)} server(s): rendered in "
                                       f"{_file_of(name)}; the machine now: {seen}", available=False))
    return results


def _file_of(name: str) -> str:
    if name.startswith("machine-wide"):
        return layout.SYSCTL_MACHINE
    if name.startswith("time"):
        return layout.TIMESYNCD_DROPIN
    if name.startswith("container"):
        return layout.RUNTIME_PIN
    return "the install steps (swapoff -a, /etc/fstab)"


def check_skew(facts: dict[str, Facts]) -> tuple[CheckResult, dict[str, float | None]]:
    skew = {h: (f.clock - f.asked_at) if f.clock is not None else None for h, f in facts.items()}
    bad = {h: f"{s:+.1f} s" if s is not None else "no clock read" for h, s in skew.items()
           if s is None or abs(s) > MAX_CLOCK_SKEW_S}
    return CheckResult(f"clocks within {MAX_CLOCK_SKEW_S:g} s of the installer's", not bad,
                       _summary(bad, len(facts), f"{len(facts)} servers")), skew


def check_os(settings: BaseOsSettings, facts: dict[str, Facts]) -> CheckResult:
    bad = {h: f"runs {name or 'an OS without /etc/os-release'}" for h, name in other_os(settings, facts).items()}
    return CheckResult(f"every server runs {settings.os} (base_os.os)", not bad,
                       _summary(bad, len(facts), f"{len(facts)} servers"))


def check_boot(facts: dict[str, Facts]) -> CheckResult:
    booted = {h: f for h, f in facts.items() if f.systemd}
    if not booted:
        return CheckResult("firewall loaded at boot", False, "no systemd on these servers (lab hosts): the rules live "
                           "in each host's network namespace, which outlives its processes", available=False)
    bad = {h: f"{layout.FIREWALL_UNIT} {f.units.get('firewall') or 'not enabled'}" for h, f in booted.items()
           if f.units.get("firewall") != "enabled"}
    return CheckResult("firewall loaded at boot", not bad,
                       _summary(bad, len(booted), f"{layout.FIREWALL_UNIT} enabled"))


async def validate(ctx: DeployContext, fws: dict[str, HostFirewall]) -> list[CheckResult]:
    """Every check. Right after an install, the probe matrix and the fresh SSH logins try only the servers
    this install changed: the others' rules and sshd are what the last full validate proved, and their
    probes cost seconds of SSH bursts (`keybuzz validate base_os` always tries everything); after a
    deploy that changed nothing, the facts it read are read again from it, not from the servers."""
    site = ctx.site
    settings = site.settings(BaseOsSettings)
    hosts = [s.hostname for s in site.servers]
    read = ctx.module_scratch.get(FACTS) if ctx.installing and not ctx.changed_hosts() else None
    facts = read if isinstance(read, dict) and set(read) == set(hosts) else await read_facts(ctx, hosts)
    results = [check_os(settings, facts), check_firewall(fws, facts)]
    changed = ctx.changed_hosts() if ctx.installing else frozenset(hosts)
    # Planned only when some server changed: planning asks every rule about every server (a second at 40).
    planned = probes.plan(site, fws, {h: f.installer_ip for h, f in facts.items()}) if changed else []
    tried = probes.toward(site, planned, changed)
    if tried:
        started = time.monotonic()
        outcomes = await run_matrix(ctx, tried)
        unexpected = [o for o in outcomes if not o.ok and o.probe.expect != "through"]
        scope = "" if len(tried) == len(planned) else f" (toward the {len(changed)} server(s) this install changed)"
        results.append(CheckResult(f"probe matrix: {len(outcomes)} (source, port) pairs tried{scope}", not unexpected,
                                   f"{len(unexpected)} unexpected, {time.monotonic() - started:.1f} s"))
        results += matrix_results(site, outcomes)
    else:
        results.append(CheckResult("probe matrix", True, "not tried: this install changed no server's rules "
                                   "(`keybuzz validate base_os` tries every pair)", available=False))
    results += await check_ssh(ctx, [s.hostname for s in site.servers if s.hostname in changed])
    results += [check_sshd(settings, facts), check_dns(site, settings, facts), check_sysctls(site, facts)]
    skew_result, skew = check_skew(facts)
    results += [skew_result, check_boot(facts)]
    results += machine_results(site, settings, facts, skew)
    return results
