"""Object storage figures on the lab: SeaweedFS behind HAProxy, boto3 through the load balancer.

    .venv/bin/python bench/object_storage.py [--lab-dir DIR] [--subnet CIDR] [--rounds 3] [--mib 64]
                                             [--from-nothing] [--keep-lab]

Uses the lab in --lab-dir when it is up, otherwise brings up a small one (taken down at the end unless
--keep-lab). Installs the module (from nothing with --from-nothing), then a re-run that must change
nothing; power-off rounds of the leader's storage server and of a follower's (PUT gap, GET gap,
acknowledged objects lost or corrupt, rejoin); then PUT and GET throughput of 1 MiB objects through
the load balancer side by side with a direct connection to one storage server. Medians over rounds on
a shared 2-core machine: orders of magnitude, not SLAs. JSON drill reports land in <site>/logs/drills/.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keybuzz.drills.report import RoundResult
from keybuzz.drills.session import run_drill
from keybuzz.engine import Engine, cleanup_module, install_modules
from keybuzz.lab import Lab
from keybuzz.lab.faults import LabFaults
from keybuzz.modules.object_storage import layout, s3
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

MODULE = module_by_name("minio")
SCENARIOS = ("poweroff-node", "poweroff-follower")
MIB = 1024 * 1024
LB = "lb-internal"

console = Console(width=150)


async def install_twice(site: Site, from_nothing: bool) -> list[tuple[str, float, int, int]]:
    rows = []
    if from_nothing:
        async with Engine(site, console=Console(quiet=True)) as engine:
            await cleanup_module(engine, MODULE, purge_data=True)
    for label in ("install", "re-run"):
        started = time.monotonic()
        async with Engine(site, console=Console(quiet=True)) as engine:
            await install_modules(engine, [MODULE], allow_missing_base_os=True)
            rows.append((label, time.monotonic() - started, engine.stats.changes, engine.stats.restarts))
    return rows


async def drill(site: Site, lab: Lab, scenario: str, rounds: int) -> list[RoundResult]:
    try:
        async with Engine(site, console=Console(quiet=True)) as engine:
            report = await run_drill(MODULE, engine, LabFaults(lab.dir), scenario, rounds)
    finally:
        lab.restore()
    return report.rounds


def throughput(site: Site, url: str, count: int, workers: int = 4) -> tuple[float, float]:
    """MB/s of PUT then GET of `count` 1 MiB objects through `url` (`workers` in parallel)."""
    conn = s3.application(site, url, timeout=60)
    bucket, body = layout.settings(site).buckets[0], secrets.token_bytes(MIB)
    keys = [f"keybuzz-bench/{secrets.token_hex(4)}/{i}" for i in range(count)]
    with ThreadPoolExecutor(workers) as pool:
        started = time.monotonic()
        list(pool.map(lambda k: conn.put_object(Bucket=bucket, Key=k, Body=body), keys))
        put = count / (time.monotonic() - started)
        started = time.monotonic()
        sizes = list(pool.map(lambda k: len(conn.get_object(Bucket=bucket, Key=k)["Body"].read()), keys))
        get = count / (time.monotonic() - started)
    s3.delete_keys(conn, bucket, keys)
    if sizes != [MIB] * count:
        raise RuntimeError("an object read back with another size")
    return put * MIB / 1e6, get * MIB / 1e6


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, default=Path("/srv/keybuzz-lab/s3"))
    parser.add_argument("--subnet", default="10.86.0.0/16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=64, help="1 MiB objects per throughput run")
    parser.add_argument("--from-nothing", action="store_true")
    parser.add_argument("--keep-lab", action="store_true")
    args = parser.parse_args()
    lab = Lab(args.lab_dir)
    started_lab = not lab.exists()
    lab.up("small", ipaddress.IPv4Network(args.subnet))
    try:
        site = load_site(lab.site_dir)
        installs = asyncio.run(install_twice(site, args.from_nothing))
        table = Table(title="install (seaweedfs backend)")
        for column in ("run", "seconds", "changes", "restarts"):
            table.add_column(column)
        for label, seconds, changes, restarts in installs:
            table.add_row(label, f"{seconds:.1f}", str(changes), str(restarts))
        console.print(table)
        drills = Table(title=f"power-off of one storage server, {args.rounds} round(s): medians (max)")
        for column in ("scenario", "PUT gap s", "GET gap s", "outage s", "acked", "lost", "missing while down",
                       "rejoin s"):
            drills.add_column(column)
        for scenario in SCENARIOS:
            results = asyncio.run(drill(site, lab, scenario, args.rounds))
            puts = [float(r.details["put_gap_s"]) for r in results]
            gets = [float(r.details["get_gap_s"]) for r in results]
            drills.add_row(scenario, f"{median(puts)} ({max(puts):.2f})", f"{median(gets)} ({max(gets):.2f})",
                           median([r.outage_s for r in results]), str(sum(r.acked for r in results)),
                           str(sum(r.lost for r in results)),
                           ", ".join(str(r.details.get("missing_while_down")) for r in results),
                           median([r.rejoin_s for r in results if r.rejoin_s is not None]))
        console.print(drills)
        rates = Table(title=f"throughput, {args.mib} x 1 MiB, 4 clients in parallel")
        for column in ("path", "PUT MB/s", "GET MB/s"):
            rates.add_column(column)
        direct = layout.gateway_url(site, layout.storage_servers(site)[0])
        through = [throughput(site, str(layout.vip_url(site)), args.mib) for _ in range(args.rounds)]
        alone = [throughput(site, direct, args.mib) for _ in range(args.rounds)]
        put_lb, get_lb = statistics.median(p for p, _ in through), statistics.median(g for _, g in through)
        put_one, get_one = statistics.median(p for p, _ in alone), statistics.median(g for _, g in alone)
        rates.add_row("through the LB (lb-internal -> HAProxy -> 3 gateways)", f"{put_lb:.1f}", f"{get_lb:.1f}")
        rates.add_row(f"direct to {layout.storage_servers(site)[0].hostname}'s gateway", f"{put_one:.1f}",
                      f"{get_one:.1f}")
        rates.add_row("ratio LB / direct", f"{put_lb / put_one:.2f}", f"{get_lb / get_one:.2f}")
        console.print(rates)
    finally:
        if started_lab and not args.keep_lab:
            lab.down()


if __name__ == "__main__":
    main()
