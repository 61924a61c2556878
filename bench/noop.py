"""A no-op re-run of the whole platform: `keybuzz install` on a deployed lab, 0 changes, timed as an operator sees it.

    .venv/bin/python bench/noop.py [--lab-dir DIR] [--subnet CIDR] [--topology small|seed] [--engine podman|docker]
                                   [--runs N] [--keep]

Brings the lab up (a lab already up in --lab-dir is reused and left running), installs every module
until a run changes nothing, then times --runs more runs of the real command (`keybuzz install`, a
fresh process each: imports, site load, pre-checks, every module's deploy and validate) and prints
the wall time of each, the median and the fastest, and the split of the fastest: start-up and
pre-checks, then each module and its slowest phases. Targets: <= 5 s on the small lab (24 servers),
<= 10 s on the seed topology (40 servers). Every run must report 0 changes and 0 restarts, or the
bench stops and says so. The machine is shared: read the fastest run, and the spread.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from keybuzz.lab import Lab

KB = str(Path(sys.executable).with_name("keybuzz"))
PHASE = re.compile(r"^\s+ok (\S+): (.*) \((\d+\.\d) s, (\d+) (?:changes|would change)\)$")
MODULE_ROW = re.compile(r"^│ (\d+) (\S+)\s+│ installed\s+│\s+(\d+) │\s+(\d+) │\s+([\d.]+) s │$")
TOTAL = re.compile(r"^(\d+) changes, (\d+) container \(re\)starts$")


@dataclass
class Run:
    seconds: float
    changes: int
    restarts: int
    modules: dict[str, float] = field(default_factory=dict)
    phases: list[tuple[float, str, str]] = field(default_factory=list)


def install(site: Path) -> Run:
    started = time.monotonic()
    done = subprocess.run([KB, "install", "--site", str(site)], capture_output=True, text=True, check=False,
                          env={"COLUMNS": "200", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"keybuzz install failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    run = Run(seconds, -1, -1)
    for line in done.stdout.splitlines():
        if match := PHASE.match(line):
            run.phases.append((float(match[3]), match[1], match[2]))
        elif match := MODULE_ROW.match(line):
            run.modules[match[2]] = float(match[5])
        elif match := TOTAL.match(line.strip()):
            run.changes, run.restarts = int(match[1]), int(match[2])
    return run


def main(args: argparse.Namespace) -> None:
    lab = Lab(Path(args.lab_dir))
    report = lab.up(args.topology, ipaddress.IPv4Network(args.subnet), args.engine)
    try:
        for attempt in range(1, 4):  # a first install, then runs until one changes nothing
            first = install(lab.site_dir)
            print(f"install {attempt}: {first.seconds:.1f} s, {first.changes} changes, {first.restarts} restarts")
            if first.changes == 0:
                break
        else:
            raise SystemExit("the platform never converged: three installs in a row changed something")
        runs = [install(lab.site_dir) for _ in range(args.runs)]
        changed = [r for r in runs if (r.changes, r.restarts) != (0, 0)]
        if changed:
            raise SystemExit(f"a no-op re-run changed something: {changed[0].changes} changes, "
                             f"{changed[0].restarts} restarts")
        times = [r.seconds for r in runs]
        fastest = min(runs, key=lambda r: r.seconds)
        print(f"\nno-op re-run, {args.topology} topology ({len(lab.hosts)} lab hosts, {lab.engine}): "
              + ", ".join(f"{t:.1f}" for t in times)
              + f" s; median {statistics.median(times):.1f} s, fastest {fastest.seconds:.1f} s (0 changes)")
        slowest = max(runs, key=lambda r: r.seconds)
        for title, run in (("fastest", fastest), ("slowest", slowest)):
            in_modules = sum(run.modules.values())
            print(f" {title} ({run.seconds:.1f} s): start-up, site load, render and pre-checks "
                  f"{run.seconds - in_modules:.1f} s")
            for name, seconds in run.modules.items():
                slow = sorted((p for p in run.phases if p[1] == name), reverse=True)[:2]
                detail = "; ".join(f"{phase} {t:.1f} s" for t, _, phase in slow if t >= 0.1)
                print(f"  {name:<11} {seconds:4.1f} s" + (f"  ({detail})" if detail else ""))
    finally:
        if not report.already_up and not args.keep:
            lab.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", default="/srv/keybuzz-lab/default")
    parser.add_argument("--subnet", default="10.77.0.0/16")
    parser.add_argument("--topology", default="small", choices=("small", "seed"))
    parser.add_argument("--engine", default="podman", choices=("podman", "docker"),
                        help="the lab hosts' container engine (docker: a dockerd per host, as the servers run)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave a lab this bench brought up running")
    main(parser.parse_args())
