"""What synchronous replication costs: pgbench through the VIP, synchronous then asynchronous, in one run.

    .venv/bin/python bench/pgbench.py [--lab-dir DIR] [--subnet CIDR] [--seconds 30] [--clients 8] [--scale 10]

pgbench runs in the lab's Patroni image (on a db server, connecting to VIP:5432 like any client),
its password in a 0600 file it reads (never in an argv). Each setting runs the TPC-B-like default
script and the simple-update one (-N) for --seconds; synchronous_mode is switched with Patroni's
PATCH /config between runs and put back to on at the end. Uses the lab in --lab-dir when it is up
(left running), otherwise brings up a small one and takes it down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keybuzz.engine import Engine, install_modules
from keybuzz.lab import Lab
from keybuzz.modules.postgres import drill, layout
from keybuzz.modules.postgres.client import lb_vip
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

console = Console(width=140)
PGPASS = "/tmp/keybuzz-bench.pgpass"


def pgbench(lab: Lab, host: str, site: Site, *args: str) -> str:
    creds = site.credentials[layout.MODULE]
    argv = ["podman", "exec", "-e", f"PGPASSFILE={PGPASS}", "--user", layout.IMAGE_USER, layout.PATRONI_CONTAINER,
            "sh", "-c", 'PATH=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1):$PATH; exec pgbench "$@"', "pgbench",
            "-h", lb_vip(site), "-p", str(layout.WRITE_PORT), "-U", creds["POSTGRES_APP_USER"], *args,
            creds["POSTGRES_APP_DATABASE"]]
    result = lab.exec(host, argv, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


def figures(output: str) -> tuple[float, float]:
    """(tps, average latency in ms) from pgbench's summary."""
    tps = re.search(r"tps = ([0-9.]+)", output)
    latency = re.search(r"latency average = ([0-9.]+) ms", output)
    if not (tps and latency):
        raise RuntimeError(f"no figures in pgbench's output: {output[-300:]}")
    return float(tps[1]), float(latency[1])


async def main(args: argparse.Namespace) -> None:
    lab = Lab(Path(args.lab_dir), log=console.print)
    started_lab = not lab.exists()
    if started_lab:
        lab.up("small", ipaddress.IPv4Network(args.subnet))
    rows = []
    try:
        site = load_site(lab.site_dir)
        async with Engine(site, console=Console(quiet=True)) as engine:
            await install_modules(engine, [module_by_name("postgres")], allow_missing_base_os=True)
        host = site.with_role("db")[0].hostname
        creds = site.credentials[layout.MODULE]
        line = f"*:*:*:{creds['POSTGRES_APP_USER']}:{creds['POSTGRES_APP_PASSWORD']}\n"
        lab.exec(host, ["podman", "exec", "-i", "--user", layout.IMAGE_USER, layout.PATRONI_CONTAINER, "sh", "-c",
                        f"umask 077; cat > {PGPASS}"], check=True, input_text=line)
        pgbench(lab, host, site, "-i", "-q", "-s", str(args.scale))
        for setting, enabled in (("synchronous (default)", True), ("asynchronous", False)):
            await drill.set_synchronous(site, enabled)
            for script, extra in (("TPC-B-like", ()), ("simple update (-N)", ("-N",))):
                tps, latency = figures(pgbench(lab, host, site, "-c", str(args.clients), "-j", "2", "-T",
                                               str(args.seconds), *extra))
                rows.append((setting, script, tps, latency))
                console.print(f"{setting}, {script}: {tps:.0f} tps, {latency:.1f} ms")
    finally:
        if rows:
            await drill.set_synchronous(load_site(lab.site_dir), True)
        if started_lab:
            lab.down()
    table = Table(title=f"pgbench through the VIP: {args.clients} clients, scale {args.scale}, {args.seconds} s each")
    for column in ("replication", "script", "tps", "latency average"):
        table.add_column(column)
    for setting, script, tps, latency in rows:
        table.add_row(setting, script, f"{tps:.0f}", f"{latency:.1f} ms")
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", default="/srv/keybuzz-lab/bench")
    parser.add_argument("--subnet", default="10.90.0.0/16", help="for a lab this script brings up")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scale", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
