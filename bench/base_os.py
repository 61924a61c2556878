"""Base OS on a lab: first deploy, no-op re-run, rules per role, and the probe matrix (size, time, surprises).

    .venv/bin/python bench/base_os.py [--lab-dir DIR] [--subnet CIDR] [--topology seed] [--runs N] [--keep]
    .venv/bin/python bench/base_os.py --matrix   # the seed site's firewall matrix per role, as Markdown (offline)

Brings the lab up with the topology (the seed's: every server whose roles the lab runs, plus the
seed's monitor and app servers, and the two load-balancer hosts), takes it down at the end unless
--keep. The first deploy starts from hosts that never had base_os; the no-op runs must report 0
changes and 0 restarts; validate runs the whole reachability matrix from the servers and from this
machine and counts the (source, port) pairs tried and the results that differ from the declarations.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from keybuzz.contract import CheckResult, Module
from keybuzz.engine import Engine
from keybuzz.lab import Lab
from keybuzz.modules.base_os import firewall
from keybuzz.registry import load_site, module_by_name, write_example_site
from keybuzz.site import Site


def matrix_markdown(site: Site, module: Module) -> str:
    """One row per role and open port: the service and who may open a connection to it."""
    fws = module.firewalls(site)
    lines = ["| role | port | service | reachable from |", "|---|---|---|---|"]
    done: set[tuple[str, ...]] = set()
    for server in site.servers:
        if server.roles in done:
            continue
        done.add(server.roles)
        fw = fws[server.hostname]
        for protocol, port in fw.ports():
            allows = [a for a in fw.allows if (a.protocol, a.port) == (protocol, port)]
            services = sorted({f"{a.service} ({a.module})" for a in allows})
            sources = ", ".join(a.source.what.removeprefix("role ") for a in allows)
            lines.append(f"| {'+'.join(server.roles)} | {protocol}/{port} | {'; '.join(services)} | {sources} |")
    return "\n".join(lines)


async def timed_deploy(site: Site, module: Module) -> tuple[float, int, int]:
    started = time.monotonic()
    async with Engine(site, console=Console(file=io.StringIO())) as engine:
        engine.module = module.name
        await module.deploy(engine, module.render(site))
        return time.monotonic() - started, engine.stats.changes, engine.stats.restarts


async def timed_validate(site: Site, module: Module) -> tuple[float, list[CheckResult]]:
    started = time.monotonic()
    async with Engine(site, console=Console(file=io.StringIO())) as engine:
        engine.module = module.name
        results = await module.validate(engine)
        return time.monotonic() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, default=Path("/srv/keybuzz-lab/baseos"))
    parser.add_argument("--subnet", default="10.89.0.0/16")
    parser.add_argument("--topology", default="seed")
    parser.add_argument("--runs", type=int, default=3, help="no-op re-runs (median and best shown)")
    parser.add_argument("--keep", action="store_true", help="leave the lab up")
    parser.add_argument("--matrix", action="store_true", help="print the seed site's matrix and stop (no lab)")
    args = parser.parse_args()
    if args.matrix:
        with tempfile.TemporaryDirectory() as folder:
            write_example_site(Path(folder) / "site")
            print(matrix_markdown(load_site(Path(folder) / "site"), module_by_name("base_os")))
        return
    lab = Lab(args.lab_dir)
    report = lab.up(args.topology, ipaddress.IPv4Network(args.subnet))
    print(f"lab {args.topology}: {report.hosts} hosts up in {report.seconds:.1f} s at {args.lab_dir}"
          + (" (already up: the first deploy may find base_os there)" if report.already_up else ""))
    module = module_by_name("base_os")
    try:
        site = load_site(lab.site_dir)
        fws = module.firewalls(site)
        print(f"servers: {len(site.servers)}; accept rules: {sum(len(f.allows) for f in fws.values())}")
        print("rules per role (accept rules of one server, pings included):")
        for roles, count in firewall.rules_by_role(fws.values()).items():
            print(f"  {roles:<12} {count:>4}")
        first, changes, restarts = asyncio.run(timed_deploy(site, module))
        print(f"first deploy: {first:.2f} s, {changes} changes, {restarts} restarts")
        noop = [asyncio.run(timed_deploy(site, module)) for _ in range(args.runs)]
        times = [t for t, _, _ in noop]
        print(f"no-op re-run: median {statistics.median(times):.2f} s, best {min(times):.2f} s, changes "
              f"{max(c for _, c, _ in noop)}, restarts {max(r for _, _, r in noop)}")
        seconds, results = asyncio.run(timed_validate(site, module))
        matrix = next(r for r in results if r.name.startswith("probe matrix"))
        failed = [r for r in results if r.available and not r.ok]
        print(f"validate: {seconds:.2f} s; {matrix.name}: {matrix.detail}; failed checks: {len(failed)}")
        for result in failed:
            print(f"  FAILED {result.name}: {result.detail}")
        for result in results:
            if not result.available:
                print(f"  n/a {result.name}: {result.detail[:150]}")
    finally:
        if not args.keep:
            lab.down()
            print("lab down")


if __name__ == "__main__":
    main()
