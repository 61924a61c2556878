"""Monitoring figures on the lab: how long after a fault each alert fires and resolves, per drill
scenario; scrape duration and sample count; Prometheus' memory and series.

    .venv/bin/python bench/monitoring.py [--lab-dir DIR] [--subnet CIDR] [--topology small|seed]
        [--rounds 1] [--scenarios postgres:poweroff-leader,redis:poweroff-master,...] [--keep-lab]

Uses the lab in --lab-dir when it is up, otherwise brings one up (`seed`: every seed server that
runs here, for the seed-scale figures; taken down at the end unless --keep-lab). Installs every
module the lab runs, monitoring last, then runs the scenarios (`--scenarios ''`: none) with the
alerts recorded. Times are medians over rounds, from the fault, on a shared 2-core machine, with
the lab's monitoring settings (scrape and evaluation every 5 s, `for: 10s`): production's defaults
(15 s, 30 s) add about 30 s to each firing time.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keybuzz.drills.report import DrillReport
from keybuzz.drills.session import run_drill
from keybuzz.engine import Engine, install_modules
from keybuzz.lab import Lab
from keybuzz.lab.faults import LabFaults
from keybuzz.modules.monitoring import api, layout
from keybuzz.registry import MODULES, load_site, module_by_name
from keybuzz.site import Site

DEFAULT_SCENARIOS = ("postgres:poweroff-leader,redis:poweroff-master,rabbitmq:poweroff-leader,"
                     "mariadb:poweroff-writer,minio:crash-node")
FIGURES = {  # what Prometheus says of itself and of its scrapes
    "targets": "count(up)",
    "targets up": "count(up == 1)",
    "samples per scrape round": "sum(scrape_samples_scraped)",
    "slowest scrape (s)": "max(scrape_duration_seconds)",
    "median scrape (s)": "quantile(0.5, scrape_duration_seconds)",
    "head series": 'max(prometheus_tsdb_head_series{job="prometheus"})',
    "Prometheus resident memory (MiB)": 'max(process_resident_memory_bytes{job="prometheus"}) / 2^20',
    "Alertmanager resident memory (MiB)": 'max(process_resident_memory_bytes{job="alertmanager"}) / 2^20',
}

console = Console(width=160)


async def install_all(site: Site) -> float:
    modules = [m for m in MODULES if m.implemented and m.hosts(site)]
    async with Engine(site, console=Console(quiet=True)) as engine:
        started = time.monotonic()
        await install_modules(engine, modules)
        return time.monotonic() - started


async def figures(site: Site) -> dict[str, float]:
    base = api.prometheus(site, layout.monitors(site)[0])
    out = {}
    for label, expr in FIGURES.items():
        rows = await api.query(base, expr)
        out[label] = float(rows[0]["value"][1]) if rows else float("nan")
    return out


async def drill(site: Site, lab: Lab, module: str, scenario: str, rounds: int) -> DrillReport:
    async with Engine(site, console=Console(quiet=True)) as engine:
        report = await run_drill(module_by_name(module), engine, LabFaults(lab.dir), scenario, rounds)
    report.save(site.logs_dir)
    return report


def alert_rows(report: DrillReport) -> list[tuple[str, str, str, str]]:
    """(alert, rounds seen, fired median, resolved median) per alert name over the rounds."""
    fired: dict[str, list[float]] = defaultdict(list)
    resolved: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    for result in report.rounds:
        for name in {t.alert.split("{", 1)[0] for t in result.alerts}:
            seen[name] += 1
        for timing in result.alerts:
            name = timing.alert.split("{", 1)[0]
            if timing.firing_s is not None:
                fired[name].append(timing.firing_s)
            if timing.resolved_s is not None:
                resolved[name].append(timing.resolved_s)

    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} s" if values else "-"

    return [(name, f"{count}/{len(report.rounds)}", median(fired[name]) if fired[name] else "pending only",
             median(resolved[name])) for name, count in sorted(seen.items(), key=lambda kv: min(fired[kv[0]] or [1e9]))]


async def main(args: argparse.Namespace) -> None:
    lab = Lab(Path(args.lab_dir), log=console.print)
    started_lab = not lab.exists()
    if started_lab:
        lab.up(args.topology, ipaddress.IPv4Network(args.subnet))
    try:
        site = load_site(lab.site_dir)
        seconds = await install_all(site)
        console.print(f"every module installed and validated in {seconds:.1f} s ({len(site.servers)} servers)")
        await asyncio.sleep(30)  # a few scrape rounds before reading the scrape figures
        table = Table(title=f"Prometheus on {layout.monitors(site)[0].hostname}, {len(site.servers)} servers")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for label, value in (await figures(site)).items():
            table.add_row(label, f"{value:,.3f}" if value < 10 else f"{value:,.0f}")
        console.print(table)
        table = Table(title="alerts per drill scenario (medians over rounds, seconds from the fault)")
        for column in ("module", "scenario", "write outage", "alert", "rounds", "fired after", "resolved after"):
            table.add_column(column)
        for item in filter(None, args.scenarios.split(",")):
            module, scenario = item.split(":", 1)
            report = await drill(load_site(lab.site_dir), lab, module, scenario, args.rounds)
            outage = f"{report.summary()['outage_median_s']} s"
            for alert, count, fired, resolved in alert_rows(report) or [("(none)", "-", "-", "-")]:
                table.add_row(module, scenario, outage, alert, count, fired, resolved)
        console.print(table)
    finally:
        if started_lab and not args.keep_lab:
            lab.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", default="/srv/keybuzz-lab/bench")
    parser.add_argument("--subnet", default="10.90.0.0/16", help="for a lab this script brings up")
    parser.add_argument("--topology", default="small", choices=("small", "seed"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    parser.add_argument("--keep-lab", action="store_true")
    asyncio.run(main(parser.parse_args()))
