"""Failover figures on the lab: write outage and acknowledged writes lost, per module and scenario.

    .venv/bin/python bench/failover.py [--lab-dir DIR] [--subnet CIDR] [--rounds 3]
        [--modules postgres,redis,rabbitmq,minio,mariadb,proxysql] [--from-nothing] [--no-seed-timings] [--keep-lab]

Uses the lab in --lab-dir when it is up, otherwise brings up a small one (taken down at the end
unless --keep-lab). Installs the modules (from nothing with --from-nothing: modules and their data removed first),
then a re-run that must change nothing, runs each scenario --rounds times and prints one summary row per scenario. For
PostgreSQL it also runs power-off rounds with the seed's timings (30/10/30, which Patroni 4
turns into 30/1/14) side by side with ours. Numbers are medians over rounds on a shared
2-core machine: orders of magnitude, not SLAs. JSON reports land in <site>/logs/drills/.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from keybuzz.drills.report import DrillReport
from keybuzz.drills.session import run_drill
from keybuzz.engine import Engine, cleanup_module, install_modules
from keybuzz.lab import Lab
from keybuzz.lab.faults import LabFaults
from keybuzz.registry import load_site, module_by_name

SCENARIOS: dict[str, list[tuple[str, dict[str, object]]]] = {
    "postgres": [("poweroff-leader", {}), ("poweroff-leader", {"sync": False}), ("isolate-leader", {}),
                 ("isolate-leader", {"sync": False}), ("switchover", {})],
    "redis": [("poweroff-master", {}), ("reboot-old-master", {}), ("isolate-master", {}),
              ("isolate-master", {"wait": True})],
    "rabbitmq": [("poweroff-leader", {}), ("crash-leader", {}), ("partition-leader", {}), ("isolate-leader", {}),
                 ("cold-start", {})],
    "minio": [("crash-node", {}), ("partition-node", {}), ("isolate-node", {})],  # power-off: bench/object_storage.py
    "mariadb": [("poweroff-writer", {}), ("crash-writer", {}), ("partition-writer", {}), ("isolate-writer", {}),
                ("cold-start", {})],
    "proxysql": [("poweroff-proxy", {})],
}
SEED_PATRONI = {"ttl": 30, "loop_wait": 1, "retry_timeout": 14}  # the seed's 30/10/30 as Patroni 4 applies it

console = Console(width=150)


@dataclass
class Row:
    module: str
    scenario: str
    setting: str
    report: DrillReport


async def timed_install(site_dir: Path, modules: list[str], *, from_nothing: bool = False
                        ) -> list[tuple[str, float, int, int]]:
    """Install (after removing the modules and their data when from_nothing), then a re-run;
    returns (label, seconds, changes, restarts)."""
    if from_nothing:
        site = load_site(site_dir)
        async with Engine(site, console=Console(quiet=True)) as engine:
            for name in reversed(modules):
                await cleanup_module(engine, module_by_name(name), purge_data=True)
    out = []
    for label in ("install from nothing" if from_nothing else "install", "re-run"):
        site = load_site(site_dir)
        async with Engine(site, console=Console(quiet=True)) as engine:
            started = time.monotonic()
            await install_modules(engine, [module_by_name(m) for m in modules], allow_missing_base_os=True)
            out.append((label, time.monotonic() - started, engine.stats.changes, engine.stats.restarts))
    return out


async def drill(site_dir: Path, lab: Lab, module: str, scenario: str, rounds: int,
                options: dict[str, object]) -> DrillReport:
    site = load_site(site_dir)
    async with Engine(site, console=Console(quiet=True)) as engine:
        report = await run_drill(module_by_name(module), engine, LabFaults(lab.dir), scenario, rounds, options,
                                 on_round=lambda r: console.print(
                                     f"  {module} {scenario} round {r.round}: outage {r.outage_s:.2f} s, "
                                     f"lost {r.lost}/{r.acked}, errors {r.error_count}, rejoin {r.rejoin_s}"))
    report.save(site.logs_dir)
    return report


def set_patroni_tuning(site_dir: Path, values: dict[str, int] | None, original: str) -> None:
    """Rewrite keybuzz.yaml's tuning.patroni (None restores the original text)."""
    path = site_dir / "keybuzz.yaml"
    if values is None:
        path.write_text(original)
        return
    data = yaml.safe_load(original) or {}
    data.setdefault("tuning", {}).setdefault("patroni", {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def main(args: argparse.Namespace) -> None:
    lab = Lab(Path(args.lab_dir), log=console.print)
    started_lab = not lab.exists()
    if started_lab:
        lab.up("small", ipaddress.IPv4Network(args.subnet))
    try:
        site_dir = lab.site_dir
        modules = [m.strip() for m in args.modules.split(",") if m.strip()]
        installs = await timed_install(site_dir, modules, from_nothing=args.from_nothing)
        rows: list[Row] = []
        for module in modules:
            for scenario, options in SCENARIOS[module]:
                setting = {(): "default", ("sync", False): "asynchronous", ("wait", True): "WAIT writer"}[
                    tuple(next(iter(options.items()), ()))]
                rows.append(Row(module, scenario, setting,
                                await drill(site_dir, lab, module, scenario, args.rounds, options)))
        if "postgres" in modules and not args.no_seed_timings:
            original = (site_dir / "keybuzz.yaml").read_text()
            try:
                set_patroni_tuning(site_dir, SEED_PATRONI, original)
                await timed_install(site_dir, ["postgres"])
                rows.append(Row("postgres", "poweroff-leader", "seed 30/10/30 (-> 30/1/14)",
                                await drill(site_dir, lab, "postgres", "poweroff-leader", args.rounds, {})))
            finally:
                set_patroni_tuning(site_dir, None, original)
                await timed_install(site_dir, ["postgres"])
        print_results(installs, rows)
    finally:
        if started_lab and not args.keep_lab:
            lab.down()


def print_results(installs: list[tuple[str, float, int, int]], rows: list[Row]) -> None:
    table = Table(title="install")
    for column in ("run", "seconds", "changes", "restarts"):
        table.add_column(column)
    for label, seconds, changes, restarts in installs:
        table.add_row(label, f"{seconds:.1f}", str(changes), str(restarts))
    console.print(table)
    table = Table(title="failover drills (median over rounds)")
    for column in ("module", "scenario", "setting", "rounds", "outage median", "outage max", "lost/acked",
                   "lost window max", "errors", "rejoin max", "consumer gap max"):
        table.add_column(column)
    for row in rows:
        s = row.report.summary()
        consumer_gaps = [float(g) for r in row.report.rounds if (g := r.details.get("consumer_gap_s")) is not None]
        table.add_row(row.module, row.scenario, row.setting, str(s["rounds"]), f"{s['outage_median_s']} s",
                      f"{s['outage_max_s']} s", f"{s['lost_total']}/{s['acked_total']}",
                      f"{s['lost_window_max_s']} s", str(s["errors_total"]),
                      f"{s['rejoin_max_s']} s" if s["rejoin_max_s"] is not None else "-",
                      f"{max(consumer_gaps):.2f} s" if consumer_gaps else "-")
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", default="/srv/keybuzz-lab/bench")
    parser.add_argument("--subnet", default="10.90.0.0/16", help="for a lab this script brings up")
    parser.add_argument("--modules", default="postgres,redis")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--from-nothing", action="store_true",
                        help="remove the modules and their data first, to time an install from nothing")
    parser.add_argument("--no-seed-timings", action="store_true")
    parser.add_argument("--keep-lab", action="store_true")
    asyncio.run(main(parser.parse_args()))
