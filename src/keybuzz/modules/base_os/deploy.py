"""Ordered deploy of the base OS: read every server, refuse what would lock the installer out, then change.

1. Facts of every server, at once (read-only). Any server whose new firewall or sshd would refuse
   the installer's own login: the whole install is refused with the reasons, nothing changed.
2. Files (rules, sshd drop-in, sysctls, DNS, journald ...): converge, with dry-run diffs.
3. sshd, where its files changed: `sshd -t`, the settings in force for the installer's login
   (`sshd -T -C`), reload, then a fresh key login; any failure puts the previous files back.
4. Firewall, where the loaded table is not the rendered one: `nft -c`, then the new table goes on
   probation: a timer on the server restores the previous one unless a fresh key login confirms it.
5. Sysctls in force; then, only where machine-wide changes apply (a server with systemd and
   `machine_wide: apply`): swap off, machine sysctls, time sync, the container runtime at its pin.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from keybuzz.concurrency import gather_bounded
from keybuzz.contract import DeployContext
from keybuzz.errors import OperationFailed
from keybuzz.modules.base_os import facts as host_facts
from keybuzz.modules.base_os import layout, lockout, runtime, sshd, sysctl
from keybuzz.modules.base_os.firewall import HostFirewall
from keybuzz.modules.base_os.render import local_part
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.poll import NotYet, describe
from keybuzz.remote.actions import write_command
from keybuzz.remote.ssh import SshPool, SshSettings
from keybuzz.render import FileSpec, HostPlan, Plans
from keybuzz.site import Site

FACTS_TIMEOUT_S = 60
LOGIN_TIMEOUT_S = 20  # sshd re-executes itself on SIGHUP: new logins wait a moment
MACHINE_WIDE_NOTE = "lab: not applied (machine-wide)"
WATCHED = (layout.SSHD_CONFIG, layout.SSHD_DROPIN, layout.FIREWALL_FILE, layout.JOURNALD_DROPIN,
           layout.TIMESYNCD_DROPIN, layout.RESOLVED_DROPIN, layout.FIREWALL_UNIT_FILE)


def machine_wide(settings: BaseOsSettings, facts: host_facts.Facts) -> bool:
    """Machine-wide changes only on a server that boots its own kernel's userland (systemd as init) and
    when the site asks for them: a lab host or a container shares the machine's kernel, swap and clock."""
    return settings.machine_wide == "apply" and facts.systemd


FACTS = "facts"  # module_scratch key: every server's facts as the deploy read them


def facts_script(site: Site) -> str:
    """What base_os reads of every server (also run inside the pre-checks' round trip: Module.precheck_script)."""
    keys = [*sysctl.NET, *{k for s in site.servers for k in sysctl.machine(s)}]
    return host_facts.script([*WATCHED, layout.RESOLV_CONF], keys, runtime.runtime(site).version_script())


def other_os(settings: BaseOsSettings, facts: dict[str, host_facts.Facts]) -> dict[str, str]:
    """Pure: the servers that do not run base_os.os -> what they run."""
    return {host: f.os for host, f in facts.items() if f.os != settings.os}


async def read_facts(ctx: DeployContext, hosts: list[str], *, prefetched: bool = False) -> dict[str, host_facts.Facts]:
    """The facts of these servers; with `prefetched`, what the pre-checks of this run read there when they
    read every one of them (taken once: a later read asks the servers again)."""
    early = ctx.prefetched.pop(layout.MODULE, {}) if prefetched else {}
    if early and set(hosts) <= set(early):
        return {h: replace(host_facts.parse(early[h].stdout), asked_at=early[h].asked_at) for h in hosts}
    text = facts_script(ctx.site)

    async def one(host: str) -> host_facts.Facts:
        sent = time.time()
        result = await ctx.host(host).run(["sh", "-c", text], timeout=FACTS_TIMEOUT_S)
        found = host_facts.parse(result.stdout)
        found.asked_at = sent
        return found

    return dict(zip(hosts, await asyncio.gather(*(one(h) for h in hosts)), strict=True))


async def fresh_login(site: Site, hostname: str) -> bool:
    """A new SSH connection with the site's key (not the run's open one, which a reload or a new
    ruleset never cuts): the proof that the installer can still come back."""
    settings = replace(SshSettings.from_site(site), retries=0)
    pool = SshPool(settings, {hostname: str(site.server(hostname).private_ip)}, site.config.container_cli)
    try:
        await pool.connection(hostname, timeout=5, retries=0)
        await pool.host(hostname).run(["true"], timeout=10)
    except OperationFailed as exc:
        raise NotYet(describe(exc)) from None
    finally:
        await pool.close()
    return True


class BaseOsDeploy:
    def __init__(self, ctx: DeployContext, plans: Plans, settings: BaseOsSettings, fws: dict[str, HostFirewall]):
        self.ctx, self.site, self.plans, self.settings, self.fws = ctx, ctx.site, plans, settings, fws
        self.hosts = list(plans)
        self.facts: dict[str, host_facts.Facts] = {}
        self.converged: Plans = {}

    async def run(self) -> None:
        ctx = self.ctx
        async with ctx.phase("read every server (installer's address, firewall, sshd, sysctls)"):
            self.facts = await read_facts(ctx, self.hosts, prefetched=True)
            ctx.module_scratch[FACTS] = self.facts
            self._refuse_lockout()
            self._refuse_other_os()
        self.converged = self._converged_plans()
        async with ctx.phase("files: firewall rules, sshd drop-in, sysctls, DNS, journald"):
            await ctx.converge(self.hosts, self.converged)
        async with ctx.phase("sshd: sshd -t, settings in force, reload, a fresh key login"):
            await self._each(self._sshd)
        async with ctx.phase("firewall: nft -c, load on probation, a fresh key login confirms it"):
            await self._each(self._firewall)
        async with ctx.phase("sysctls in force"):
            await self._each(self._sysctls)
        with_systemd = [h for h in self.hosts if self.facts[h].systemd]
        if with_systemd:
            async with ctx.phase("services: journald, resolver, the firewall at boot"):
                await self._each(self._services, with_systemd)
        if len(with_systemd) < len(self.hosts):
            ctx.note(f"{len(self.hosts) - len(with_systemd)} server(s) run no systemd (lab hosts): no journald or "
                     "resolver to restart; the rules stay loaded in each server's own network namespace")
        applying = [h for h in self.hosts if machine_wide(self.settings, self.facts[h])]
        if applying:
            async with ctx.phase("machine-wide: swap off, time sync, container runtime"):
                await self._each(self._machine, applying)
        skipped = [h for h in self.hosts if h not in applying]
        if skipped:
            why = "keybuzz.yaml base_os.machine_wide: render" if self.settings.machine_wide == "render" \
                else "no systemd there (a container or namespace shares its machine's kernel)"
            ctx.note(f"{MACHINE_WIDE_NOTE} on {len(skipped)} server(s) ({why}): swap, vm./kernel./fs. sysctls, "
                     "time sync, package installs; rendered and checked by `keybuzz validate base_os`")

    # -- 1. refuse before any change --------------------------------------------------------------
    def _refuse_lockout(self) -> None:
        problems = [f"{host}: {p}" for host in self.hosts
                    for p in lockout.host_problems(self.site, self.settings, self.fws[host], self.facts[host])]
        problems += [f"{host}: {p}" for host, p in
                     lockout.operator_problems(self.site, self.fws, os.environ.get("SSH_CONNECTION", ""))]
        if problems:
            raise OperationFailed("refused before any change, the installer would lock itself out: "
                                  + "; ".join(problems), module=layout.MODULE, step="lock-out check",
                                  host=",".join(sorted({p.split(":", 1)[0] for p in problems})))

    def _refuse_other_os(self) -> None:
        """What is rendered (the Docker repository, the resolver) is for base_os.os: never for another OS."""
        wrong = other_os(self.settings, self.facts)
        if wrong:
            raise OperationFailed(f"refused before any change: keybuzz.yaml base_os.os is {self.settings.os}, but "
                                  + ", ".join(f"{h} runs {os_name or 'an OS without /etc/os-release'}"
                                              for h, os_name in wrong.items())
                                  + "; set base_os.os to what the servers run (debian-12 or ubuntu-24.04)",
                                  module=layout.MODULE, step="operating system check", host=",".join(sorted(wrong)))

    # -- 2. files -----------------------------------------------------------------------------------
    def _converged_plans(self) -> Plans:
        out: Plans = {}
        for host in self.hosts:
            plan = self.plans[host]
            if not machine_wide(self.settings, self.facts[host]):
                plan = local_part(plan)
            main = self.facts[host].files.get(layout.SSHD_CONFIG)
            if main is not None and sshd.include_first(main) != main:
                plan = HostPlan(host, list(plan.directories),
                                [*plan.files, FileSpec(layout.SSHD_CONFIG, sshd.include_first(main))])
            out[host] = plan
        return out

    def _changed(self, host: str, path: str) -> bool:
        """The rendered file differs from what the server had before this run's converge."""
        wanted = next((f for f in self.converged[host].files if f.path == path), None)
        return wanted is not None and self.facts[host].paths.path(path).sha256 != wanted.sha256

    async def _each(self, step: Callable[[str], Awaitable[None]], hosts: list[str] | None = None) -> None:
        results = await gather_bounded(self.site.config.ssh.parallelism, step, hosts or self.hosts,
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if isinstance(first, OperationFailed) and len(failures) == 1:
                raise first
            raise OperationFailed("; ".join(str(f) for f in failures), module=layout.MODULE)

    async def _sh(self, host: str, script: str, *, stdin: str | None = None, check: bool = True,
                  timeout: float = 60) -> str:
        result = await self.ctx.host(host).run(["sh", "-c", script], check=False, timeout=timeout, stdin=stdin)
        if check and not result.ok:
            raise OperationFailed(f"{host}: {(result.stderr or result.stdout).strip()[-400:]}", host=host,
                                  module=layout.MODULE, step=script.splitlines()[0][:80])
        return result.stdout

    # -- 3. sshd ----------------------------------------------------------------------------------
    async def _sshd(self, host: str) -> None:
        if not (self._changed(host, layout.SSHD_DROPIN) or self._changed(host, layout.SSHD_CONFIG)):
            return
        self.ctx.changed(host, "sshd: reload with the hardened settings")
        if self.ctx.dry_run:
            return
        facts = self.facts[host]
        test = await self.ctx.host(host).run([layout.SSHD, "-t"], check=False, timeout=30)
        if not test.ok:
            await self._restore_sshd(host)
            raise OperationFailed(f"{host}: sshd -t refused the new settings, previous files put back: "
                                  f"{(test.stderr or test.stdout).strip()[-300:]}", host=host, module=layout.MODULE,
                                  step="sshd -t")
        spec = f"user={facts.user},host={facts.installer_ip},addr={facts.installer_ip}," \
               f"laddr={facts.server_ip},lport={self.site.config.ssh.port}"
        shown = await self.ctx.host(host).run([layout.SSHD, "-T", "-C", spec], check=False, timeout=30)
        effective = sshd.parse_effective(shown.stdout)
        problems = sshd.effective_problems(self.settings.ssh, effective) + sshd.installer_problems(
            facts.user, facts.installer_ip, facts.groups, effective)
        if problems:
            await self._restore_sshd(host)
            raise OperationFailed(f"{host}: sshd would not run as rendered ({'; '.join(problems)}); previous files put "
                                  f"back, sshd not reloaded", host=host, module=layout.MODULE, step="sshd -T")
        await self._reload_sshd(host, effective)
        try:
            await self.ctx.wait_for(f"a fresh key login to {host} after the sshd reload",
                                    lambda: fresh_login(self.site, host), timeout=LOGIN_TIMEOUT_S, where=host)
        except OperationFailed:
            await self._restore_sshd(host)
            await self._reload_sshd(host, effective)
            raise

    async def _reload_sshd(self, host: str, effective: dict[str, list[str]]) -> None:
        if self.facts[host].systemd:
            await self._sh(host, "systemctl reload ssh.service")
        else:  # no init system to ask (a lab host): the signal sshd's unit would send
            pidfile = (effective.get("pidfile") or ["/run/sshd.pid"])[0]
            await self._sh(host, f"kill -HUP \"$(cat {shlex.quote(pidfile)})\"")

    async def _restore_sshd(self, host: str) -> None:
        for path, content in self.facts[host].files.items():
            if content is None:
                await self._sh(host, f"rm -f {shlex.quote(path)}")
            else:
                spec = FileSpec(path, content)
                await self._sh(host, write_command(path, 0o644, "root", spec.sha256), stdin=content)

    # -- 4. firewall --------------------------------------------------------------------------------
    async def _firewall(self, host: str) -> None:
        fw, facts = self.fws[host], self.facts[host]
        if facts.table_hash == fw.digest:
            return
        loaded = f"loaded {facts.table_hash}" if facts.table_hash else "no keybuzz table loaded"
        self.ctx.changed(host, f"firewall: load {len(fw.allows)} accept rules ({loaded}, rendered {fw.digest})")
        if self.ctx.dry_run:
            return
        if not facts.nft:
            if not machine_wide(self.settings, facts):
                raise OperationFailed(f"{host}: nft is not installed", host=host, module=layout.MODULE,
                                      step="firewall", resume="install the nftables package there")
            await self._sh(host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables", timeout=600)
        q = shlex.quote
        table, rb = f"inet {layout.TABLE}", layout.ROLLBACK_DIR
        rollback = (f"nft delete table {table} 2>/dev/null; "
                    f"if [ -s {rb}/previous.nft ]; then nft -f {rb}/previous.nft; fi")
        guard = f"sleep {layout.ROLLBACK_AFTER_S}; sh {q(rb + '/rollback.sh')}"
        await self._sh(host, "\n".join([
            "set -e",
            f"nft -c -f {q(layout.FIREWALL_FILE)}",
            f"mkdir -p -m 0700 {rb}",
            f"nft list table {table} > {rb}/previous.nft 2>/dev/null || : > {rb}/previous.nft",
            f"printf '%s\\n' {q(rollback)} > {rb}/rollback.sh",
            f"setsid sh -c {q(guard)} </dev/null >/dev/null 2>&1 &",
            f"echo $! > {rb}/guard.pid",
            f"nft -f {q(layout.FIREWALL_FILE)}",
        ]))
        try:
            await self.ctx.wait_for(f"a fresh key login to {host} through the new firewall",
                                    lambda: fresh_login(self.site, host), timeout=LOGIN_TIMEOUT_S, where=host)
        except OperationFailed as exc:
            await self._sh(host, f"kill -- -\"$(cat {rb}/guard.pid)\" 2>/dev/null; sh {rb}/rollback.sh", check=False)
            raise OperationFailed(f"{host}: the new firewall let no fresh SSH login in; the previous one is back: "
                                  f"{exc}", host=host, module=layout.MODULE, step="firewall") from None
        await self._sh(host, f"kill -- -\"$(cat {rb}/guard.pid)\" 2>/dev/null || true; rm -rf {rb}")

    # -- 5. sysctls, machine-wide -----------------------------------------------------------------
    async def _sysctls(self, host: str) -> None:
        server, facts = self.site.server(host), self.facts[host]
        wanted = {**sysctl.net(server), **(sysctl.machine(server) if machine_wide(self.settings, facts) else {})}
        differ = {k: v for k, v in wanted.items() if facts.sysctls.get(k) != sysctl.normal(v)}
        if not differ:
            return
        for key, value in differ.items():
            self.ctx.changed(host, f"sysctl {key}: {facts.sysctls.get(key, '?')} -> {value}")
        if not self.ctx.dry_run:
            await self.ctx.host(host).run(["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in differ.items())], timeout=30)

    async def _services(self, host: str) -> None:
        """systemd units on the server: its journald and resolver pick up their drop-ins, and the rules
        are loaded at every boot."""
        for path, unit in ((layout.JOURNALD_DROPIN, "systemd-journald"), (layout.RESOLVED_DROPIN, "systemd-resolved")):
            if self._changed(host, path):
                self.ctx.changed(host, f"restart {unit} ({path} changed)")
                if not self.ctx.dry_run:
                    await self._sh(host, f"systemctl restart {unit}.service")
        if self._changed(host, layout.FIREWALL_UNIT_FILE):
            self.ctx.changed(host, f"enable {layout.FIREWALL_UNIT}.service (the rules at every boot)")
            if not self.ctx.dry_run:
                await self._sh(host, f"systemctl daemon-reload && systemctl enable {layout.FIREWALL_UNIT}.service")

    async def _machine(self, host: str) -> None:
        facts = self.facts[host]
        if self.settings.disable_swap and facts.swaps:
            self.ctx.changed(host, f"swap off ({', '.join(facts.swaps)}), commented out in /etc/fstab")
            if not self.ctx.dry_run:
                await self._sh(host, "swapoff -a && sed -ri 's@^([^#].*\\sswap\\s.*)$@# keybuzz: swap off # \\1@' "
                                     "/etc/fstab")
        if self._changed(host, layout.TIMESYNCD_DROPIN):
            self.ctx.changed(host, "time sync: restart systemd-timesyncd with the site's NTP servers")
            if not self.ctx.dry_run:
                await self._sh(host, "systemctl restart systemd-timesyncd.service && timedatectl set-ntp true")
        chosen = runtime.runtime(self.site)
        have = {p: facts.packages.get(p, "") for p in chosen.packages}
        if any(v != chosen.version for v in have.values()):
            current = ", ".join(f"{p} {v or 'absent'}" for p, v in have.items())
            self.ctx.changed(host, f"container runtime {current} -> {chosen.version}")
            if not self.ctx.dry_run:
                await self._sh(host, chosen.install_script(), timeout=900)


async def deploy(ctx: DeployContext, plans: Plans, settings: BaseOsSettings, fws: dict[str, HostFirewall]) -> None:
    await BaseOsDeploy(ctx, plans, settings, fws).run()
