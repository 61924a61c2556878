"""Pre-checks: before anything changes, every host of the selected modules is asked, at once and in
seconds, whether the install can run there. Every problem comes back, each naming its host,
address, what failed and the likely fix; a run with one problem changes nothing.

Per host, in one command: SSH answers within PRECHECK_CONNECT_S (no retry) and takes the site's key; the
container CLI is installed; the data folder's filesystem has room; no foreign process listens
on a port a module needs there (a port is the module's own when one of the module's
containers runs on that host); the clock is within MAX_CLOCK_SKEW_S of this machine's; each
volume keybuzz.yaml gives the host is a device keybuzz may format or mount (keybuzz.volumes);
base_os's firewall table is loaded, unless base_os is installed first in the same run: without
it every port a module opens is reachable from the whole network. The same command runs each module's
own read-only script (Module.precheck_script: base_os's facts of every server), whose output waits in
the engine for that module's deploy, which then skips a round trip to every server.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keybuzz.concurrency import gather_bounded
from keybuzz.contract import Module, Prefetched
from keybuzz.engine.context import Engine
from keybuzz.errors import OperationFailed
from keybuzz.modules.base_os import layout as base_os
from keybuzz.registry import host_ports
from keybuzz.remote.probe import parse_probe, probe_script
from keybuzz.remote.ssh import HostUnreachable
from keybuzz.site import Site
from keybuzz.volumes.plan import Volume, volumes
from keybuzz.volumes.prepare import refusals as volume_refusals

PRECHECK_CONNECT_S = 5.0
MIN_FREE_DISK_MB = 1024
MAX_CLOCK_SKEW_S = 2.0
_MARK = "#KB-"
_MODULE_MARK, _MODULE_END = "#KB-MODULE-BEGIN ", "#KB-MODULE-END "


@dataclass(frozen=True)
class Problem:
    host: str
    ip: str
    what: str
    fix: str
    missing_base_os: bool = False  # waived by `install --allow-missing-base-os`, which warns instead


def facts_script(data_root: str, cli: str, modules: Mapping[str, str] | None = None) -> str:
    """One read-only command: first each module's own pre-check script (module name -> script), in a
    subshell, its output kept verbatim (first: a script that reads the clock reads it as soon as asked);
    then the engine's container listing (cached like a converge's probe), CLI present, free disk under
    data_root, listening TCP ports, clock, base_os's firewall table."""
    q = shlex.quote
    blocks = "".join(f"echo '{_MODULE_MARK}{name}'\n( {script}\n); echo; echo '{_MODULE_END}{name}'\n"
                     for name, script in (modules or {}).items())
    return blocks + probe_script([], cli).removesuffix("exit 0\n") + "\n".join([
        f"echo '{_MARK}cli'; command -v {q(cli)} || echo missing",
        # The nearest existing parent of data_root: a first install has not created it yet.
        f"d={q(data_root)}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done",
        f"echo '{_MARK}df'; df -Pk \"$d\"",  # the last line is the filesystem's
        f"echo '{_MARK}tcp'; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null",
        f"echo '{_MARK}clock'; date +%s.%N",
        f"echo '{_MARK}base_os'; nft list table inet {base_os.TABLE} >/dev/null 2>&1 && echo loaded || echo missing",
        "exit 0",
    ]) + "\n"


def split_module_output(text: str) -> tuple[str, dict[str, str]]:
    """Each module script's output (as it printed it) by module name, and the pre-check's own facts after them."""
    outputs: dict[str, str] = {}
    while text.startswith(_MODULE_MARK):
        name, _, text = text[len(_MODULE_MARK):].partition("\n")
        # the echo after the script ends a last line the script left open: the body is what it printed
        outputs[name], _, text = text.partition(f"\n{_MODULE_END}{name}\n")
    return text, outputs


def parse_facts(text: str) -> dict[str, list[str]]:
    """Sections of the facts; `ours` lists the modules of the containers running on the host."""
    listing, _, rest = text.partition(_MARK)
    state = parse_probe(listing)
    sections: dict[str, list[str]] = {"ours": sorted({c.module for c in state.containers.values()
                                                      if c.running and c.module})}
    current: list[str] | None = None
    for line in (_MARK + rest).splitlines() if rest else []:
        if line.startswith(_MARK):
            current = sections.setdefault(line[len(_MARK):], [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return sections


def listening_ports(lines: list[str]) -> set[int]:
    """Local ports in state LISTEN (0A) from /proc/net/tcp{,6}."""
    ports = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def free_mb(lines: list[str]) -> int | None:
    fields = lines[-1].split() if lines else []
    return int(fields[3]) // 1024 if len(fields) >= 4 and fields[3].isdigit() else None


def host_problems(host: str, ip: str, facts: dict[str, list[str]], *, cli: str | None, data_root: str,
                  ports: Sequence[tuple[Module, int, str]], skew: float | None) -> list[Problem]:
    """Pure: what is wrong on one host, from its facts (unit-tested on captured output). `cli` None:
    no container runs there (base_os installs the container runtime itself)."""
    problems = []
    if cli is not None and facts.get("cli", ["missing"])[-1] == "missing":
        problems.append(Problem(host, ip, f"container CLI `{cli}` not found",
                                f"install {cli} on {host}, or set container_cli in keybuzz.yaml"))
    free = free_mb(facts.get("df", []))
    if free is None:
        problems.append(Problem(host, ip, f"free disk under {data_root} unknown (`df` gave nothing)",
                                "check that df works on the server"))
    elif free < MIN_FREE_DISK_MB:
        problems.append(Problem(host, ip, f"{free} MB free under {data_root}, at least {MIN_FREE_DISK_MB} MB needed",
                                "free space or attach a volume (keybuzz.yaml paths.data_root)"))
    listening = listening_ports(facts.get("tcp", []))
    ours = set(facts.get("ours", []))
    for module, number, service in ports:
        if number in listening and module.name not in ours:
            problems.append(Problem(host, ip, f"port {number} ({service}, module {module.name}) is taken by another "
                                    "process", f"stop it or give the role another server (`ss -ltnp 'sport = "
                                    f":{number}'` on {host} names it)"))
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW_S:
        problems.append(Problem(host, ip, f"clock {skew:+.1f} s off this machine's",
                                "run NTP (chrony or systemd-timesyncd) on the server"))
    return problems


def base_os_command(site: Site) -> str:
    """The command that installs base_os on every server of the site."""
    return shlex.join(["keybuzz", "install", "--site", str(site.root), "--only", base_os.MODULE])


def base_os_problem(host: str, ip: str, facts: dict[str, list[str]], install_base_os: str) -> Problem | None:
    """Pure: base_os's nftables table is not loaded on the host (never installed, cleaned up, or
    flushed): nothing filters its ports. `install_base_os` is the command that fixes it."""
    if facts.get("base_os", ["missing"])[-1] == "loaded":
        return None
    return Problem(host, ip, f"base_os is not installed (no nftables table inet {base_os.TABLE}): without its "
                   "firewall every port the modules open here is reachable from the whole network",
                   f"`{install_base_os}` first, or install anyway with --allow-missing-base-os", missing_base_os=True)


async def _one(engine: Engine, hostname: str, ports: list[tuple[Module, int, str]], containers: bool,
               host_volumes: list[Volume], install_base_os: str | None, scripts: Mapping[str, str]) -> list[Problem]:
    ip = str(engine.site.server(hostname).private_ip)
    try:
        await engine.pool.connection(hostname, timeout=PRECHECK_CONNECT_S, retries=0)
    except HostUnreachable as exc:
        return [Problem(hostname, ip, str(exc), _ssh_fix(str(exc), engine))]
    except OperationFailed as exc:  # the key or known_hosts cannot be read: the same for every host
        return [Problem(hostname, ip, str(exc), exc.resume or "check keybuzz.yaml ssh:")]
    cli, data_root = engine.site.config.container_cli, engine.site.config.paths.data_root
    sent = time.time()
    try:
        result = await engine.host(hostname).shell(facts_script(data_root, cli, scripts), timeout=30)
    except OperationFailed as exc:
        return [Problem(hostname, ip, f"the pre-check command failed: {exc}", "check the server over SSH")]
    own, outputs = split_module_output(result.stdout)
    for name, output in outputs.items():
        engine.prefetched.setdefault(name, {})[hostname] = Prefetched(sent, output)
    facts = parse_facts(own)
    clock = facts.get("clock", [""])[-1]
    skew = float(clock) - (sent + time.time()) / 2 if clock.replace(".", "", 1).isdigit() else None
    problems = host_problems(hostname, ip, facts, cli=cli if containers else None, data_root=data_root, ports=ports,
                             skew=skew)
    missing = base_os_problem(hostname, ip, facts, install_base_os) if install_base_os else None
    problems += [missing] if missing else []
    try:
        refused = await volume_refusals(engine, host_volumes)
    except OperationFailed as exc:
        return [*problems, Problem(hostname, ip, f"probing its volumes failed: {exc}", "check the server over SSH")]
    return problems + [Problem(hostname, ip, why, "nothing was changed on any server") for _, why in refused]


def _ssh_fix(message: str, engine: Engine) -> str:
    settings = engine.settings
    if "permission denied" in message:
        return f"add the public key of {settings.identity_file} to ~{settings.user}/.ssh/authorized_keys"
    if "host key" in message:
        return f"add the server's key to {settings.known_hosts} (ssh-keyscan), after checking it"
    return "check the address in servers.tsv, that the server is up and that sshd listens on port " \
           f"{settings.port}; a firewall may drop the connection"


async def precheck(engine: Engine, modules: Sequence[Module], hostnames: Mapping[str, bool]) -> list[Problem]:
    """Every problem of these hosts (-> whether a container runs there) for these modules (empty: the
    install may start). base_os is asked for unless it is one of the modules (it is installed first)."""
    site = engine.site
    table = host_ports(site, list(modules))
    hosts = sorted(hostnames, key=lambda h: site.server(h).line)
    wanted = volumes(site, modules)
    install_base_os = None if any(m.name == base_os.MODULE for m in modules) else base_os_command(site)
    scripts = {m.name: (script, {s.hostname for s in m.hosts(site)}) for m in modules
               if (script := m.precheck_script(site))}

    async def one(h: str) -> list[Problem]:
        return await _one(engine, h, [(m, p.number, p.service) for m, p in table[h]], hostnames[h],
                          [v for v in wanted if v.host == h], install_base_os,
                          {name: script for name, (script, on) in scripts.items() if h in on})

    answers = await gather_bounded(engine.settings.parallelism, one, hosts)
    return [problem for problems in answers for problem in problems]
