"""Engine timings on the lab: first install, no-op re-run, and no-op time for 10, 20 and 50 hosts.

    .venv/bin/python bench/engine.py [--lab-dir DIR] [--subnet CIDR] [--runs N]

Uses the lab in --lab-dir when it is up (left running), otherwise brings one up and takes it
down at the end. The small lab has 14 servers; for 20 and 50 hosts each lab server stands for
several hosts: every bench host gets its own SSH connection, files and container, so the
SSH, probe and podman work is the same as with that many machines (all on this one CPU).
Target: a no-op re-run over 50 hosts in under 2 s on a 2-core machine. The first
no-op after a change asks podman for its containers on every host (~30 ms of CPU each); later
ones reuse that listing while podman's state database is unchanged (see remote/probe.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import ipaddress
import statistics
import time
from pathlib import Path

from rich.console import Console

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.contract import DeployContext, Module
from keybuzz.engine import Engine, install_modules
from keybuzz.lab import Lab
from keybuzz.registry import load_site
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans
from keybuzz.site import Site
from keybuzz.site.servers import Server

COMMAND = ("/bin/sh", "-c", 'trap "exit 0" TERM; sleep infinity & wait')


class BenchModule(Module):
    """Per bench host: a folder, a config file, a secret env file and one small container."""

    number, name, title, own_role = 91, "bench", "engine bench", "app"

    def render(self, site: Site) -> Plans:
        plans: Plans = {}
        for server in site.servers:
            root = f"/opt/keybuzz/bench/{server.hostname}"
            conf, env = f"{root}/bench.conf", f"{root}/bench.env"
            plans[server.hostname] = HostPlan(
                server.hostname, [DirSpec(root)],
                [FileSpec(conf, f"host={server.hostname}\n"), FileSpec(env, "BENCH_PASSWORD=not-a-real-one\n",
                                                                       secret=True)],
                [ContainerSpec(f"keybuzz-bench-{server.hostname}", site.image("base"), self.name, command=COMMAND,
                               env_file=env, mounts=(Mount(conf, "/etc/bench.conf", True),),
                               restart_on=(conf,))])
        return plans

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        async with ctx.phase("converge"):
            await ctx.converge(list(plans), plans)


def bench_site(lab_site: Site, count: int) -> Site:
    """`count` hosts spread over the lab's servers, each with its own name (own connection, files, container)."""
    real = lab_site.servers
    servers = [Server(f"bench-{i:02d}", real[i % len(real)].private_ip, None, ("app",), "", i + 1)
               for i in range(count)]
    return dataclasses.replace(lab_site, servers=servers)


async def timed_install(site: Site, module: Module) -> tuple[float, int, int]:
    started = time.monotonic()
    async with Engine(site, console=Console(file=io.StringIO())) as engine:
        await install_modules(engine, [module], allow_missing_base_os=True)
        return time.monotonic() - started, engine.stats.changes, engine.stats.restarts


async def remove_all(site: Site, module: Module) -> None:
    async with Engine(site, console=Console(file=io.StringIO())) as engine:
        engine.module = module.name
        plans = module.render(site)
        await engine.remove(list(plans), plans, purge_data=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, default=Path("/srv/keybuzz-lab/bench"))
    parser.add_argument("--subnet", default="10.79.0.0/16")
    parser.add_argument("--runs", type=int, default=4, help="no-op runs per host count (median and best shown)")
    parser.add_argument("--counts", default="10,20,50", help="host counts besides the lab's own servers")
    args = parser.parse_args()
    lab = Lab(args.lab_dir)
    started_lab = not lab.exists()
    if started_lab:
        report = lab.up("small", ipaddress.IPv4Network(args.subnet))
        print(f"lab up in {report.seconds:.1f} s ({report.hosts} hosts) at {args.lab_dir}")
    module = BenchModule()
    lab_site = load_site(lab.site_dir)
    try:
        print(f"{'hosts':>5}  {'first install':>13}  {'changes':>7}  {'restarts':>8}  {'1st no-op':>9}  "
              f"{'no-op median':>12}  {'no-op best':>10}  {'no-op changes':>13}")
        for count in (len(lab_site.servers), *(int(c) for c in args.counts.split(",") if c)):
            site = bench_site(lab_site, count)
            first, changes, restarts = asyncio.run(timed_install(site, module))
            noop = [asyncio.run(timed_install(site, module)) for _ in range(args.runs)]
            times = [t for t, _, _ in noop]
            print(f"{count:>5}  {first:>11.2f} s  {changes:>7}  {restarts:>8}  {times[0]:>7.2f} s  "
                  f"{statistics.median(times):>10.2f} s  {min(times):>8.2f} s  {max(c for _, c, _ in noop):>13}",
                  flush=True)
            asyncio.run(remove_all(site, module))
    finally:
        if started_lab:
            lab.down()
            print("lab down")


if __name__ == "__main__":
    main()
