"""Partial partitions at full speed: the primary cut from its peers only, while clients still reach it.

    .venv/bin/python bench/isolate.py [--lab-dir DIR] [--subnet CIDR] [--modules postgres,redis] [--writers 4]
                                      [--hold-pg 40] [--hold-redis 20]

The way Jepsen tests these systems: several writers through the load balancer VIP at full speed,
each write a unique id; the primary is isolated from the other servers of its cluster (replicas,
DCS members, Sentinels) for a while, then healed; once the cluster is healthy every acknowledged
id is looked up on the new primary. One row per setting: PostgreSQL synchronous (the default) and
asynchronous, Redis with plain writes (the default gate) and with WAIT 1 after each write. Uses
the lab in --lab-dir when it is up (left running), otherwise brings up a small one and takes it
down at the end. Figures from a shared 2-core machine: orders of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keybuzz.contract import WriterProbe
from keybuzz.drills.history import History
from keybuzz.drills.probe import ProbeRunner
from keybuzz.engine import Engine, install_modules
from keybuzz.lab import Lab
from keybuzz.modules.postgres import drill as pg_drill
from keybuzz.modules.postgres.client import lb_vip
from keybuzz.modules.redis import drill as redis_drill
from keybuzz.modules.redis import layout as redis_layout
from keybuzz.modules.redis.probe import RedisWriterProbe
from keybuzz.poll import wait_until
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

console = Console(width=160)


@dataclass
class Row:
    module: str
    setting: str
    held_s: float
    acked_during: int
    lost: int
    lost_window_s: float
    errors: int


def writers(probes: list[WriterProbe]) -> list[ProbeRunner]:
    runners = [ProbeRunner(p, interval=0.0, first_id=(i + 1) * 10_000_000) for i, p in enumerate(probes)]
    for runner in runners:
        runner.start()
    return runners


async def isolated(site: Site, lab: Lab, module: str, setting: str, target: str, peers: list[str],
                   probes: list[WriterProbe], hold: float, healthy) -> Row:  # type: ignore[no-untyped-def]
    runners = writers(probes)
    await asyncio.sleep(2)
    fault_at = time.monotonic()
    await asyncio.to_thread(lab.isolate, target, peers)
    try:
        await asyncio.sleep(hold)
    finally:
        await asyncio.to_thread(lab.heal, target)
    healed_at = time.monotonic()
    await asyncio.sleep(2)
    for runner in runners:
        await asyncio.to_thread(runner.stop)
    await wait_until(f"a healthy {module} cluster after the heal", healthy, timeout=180, interval=1)
    lost, acked_during, errors, windows = 0, 0, 0, []
    for runner, probe in zip(runners, probes, strict=True):
        history: History = runner.history
        found = await wait_until("the ids read back", lambda p=probe: _read(p), timeout=60, interval=1)
        gone = history.acked_ids() - found[0]
        lost += len(gone)
        acked_during += sum(1 for r in history.records if r.acked and fault_at <= r.sent < healed_at)
        errors += sum(history.errors(fault_at).values())
        windows.append(history.last_ack_after(fault_at, ids=gone))
    return Row(module, setting, hold, acked_during, lost, max(windows), errors)


async def _read(probe: WriterProbe) -> tuple[set[int]]:
    return (await asyncio.to_thread(probe.read_ids),)


async def postgres_rows(site: Site, lab: Lab, count: int, hold: float) -> list[Row]:
    rows = []
    for setting, enabled in (("synchronous (default)", True), ("asynchronous", False)):
        await pg_drill.set_synchronous(site, enabled)
        leader = await pg_drill.wait_healthy(site)
        peers = [s.hostname for s in site.with_role("db") if s.hostname != leader.hostname]
        probes: list[WriterProbe] = [pg_drill.PostgresWriterProbe(site, lb_vip(site)) for _ in range(count)]
        await asyncio.to_thread(probes[0].ensure_table)  # type: ignore[attr-defined]
        rows.append(await isolated(site, lab, "postgres", setting, leader.hostname, peers, probes, hold,
                                   lambda: pg_drill.wait_healthy(site, timeout=5)))
    await pg_drill.set_synchronous(site, True)
    return rows


async def redis_rows(site: Site, lab: Lab, count: int, hold: float) -> list[Row]:
    rows = []
    password = site.secret("redis", "REDIS_PASSWORD")
    for setting, wait in (("plain writes (default)", 0), ("WAIT 1 after each write", 1)):
        await wait_until("a healthy Redis cluster", lambda: redis_drill.cluster_healthy(site), timeout=120)
        target = await redis_drill.master_hostname(site)
        assert target
        peers = [s.hostname for s in redis_layout.redis_servers(site) if s.hostname != target]
        vip = str(redis_layout.vip(site))
        probes: list[WriterProbe] = [
            RedisWriterProbe(vip, redis_layout.REDIS_PORT, password, f"keybuzz:bench:isolate:{secrets.token_hex(4)}",
                             wait_replicas=wait) for _ in range(count)]
        rows.append(await isolated(site, lab, "redis", setting, target, peers, probes, hold,
                                   lambda: redis_drill.cluster_healthy(site)))
    return rows


async def main(args: argparse.Namespace) -> None:
    lab = Lab(Path(args.lab_dir), log=console.print)
    started_lab = not lab.exists()
    if started_lab:
        lab.up("small", ipaddress.IPv4Network(args.subnet))
    try:
        site = load_site(lab.site_dir)
        async with Engine(site, console=Console(quiet=True)) as engine:
            await install_modules(engine, [module_by_name("postgres"), module_by_name("redis")],
                                  allow_missing_base_os=True)
        chosen = args.modules.split(",")
        rows = [*(await postgres_rows(site, lab, args.writers, args.hold_pg) if "postgres" in chosen else []),
                *(await redis_rows(site, lab, args.writers, args.hold_redis) if "redis" in chosen else [])]
    finally:
        lab.restore()
        if started_lab:
            lab.down()
    table = Table(title=f"primary isolated from its peers, {args.writers} writers at full speed through the VIP")
    for column in ("module", "setting", "held", "acknowledged during it", "acknowledged then lost", "lost window",
                   "errors"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.module, r.setting, f"{r.held_s:.0f} s", str(r.acked_during), str(r.lost),
                      f"{r.lost_window_s:.2f} s", str(r.errors), style="red" if r.lost else None)
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", default="/srv/keybuzz-lab/bench")
    parser.add_argument("--subnet", default="10.90.0.0/16", help="for a lab this script brings up")
    parser.add_argument("--modules", default="postgres,redis")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--hold-pg", type=float, default=40.0)
    parser.add_argument("--hold-redis", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
