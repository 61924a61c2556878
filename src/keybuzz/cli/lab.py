"""`keybuzz lab ...`: build, inspect, break and remove the local multi-host lab."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from keybuzz.cli.options import JsonOption
from keybuzz.cli.output import console, err_console, table
from keybuzz.lab.errors import LabError
from keybuzz.lab.images import BuildReport, ImageStore
from keybuzz.lab.lab import DEFAULT_DIR, Engine, HostStatus, Lab
from keybuzz.lab.topology import DEFAULT_SUBNET, parse_subnet

lab_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="The local lab: many servers on this machine (namespaces, SSH, podman). Needs root.")

DirOption = Annotated[Path, typer.Option("--dir", "-d", envvar="KEYBUZZ_LAB_DIR",
                                         help="Lab folder (state, host files, site/). Not under /etc /opt /var.")]
HostArg = Annotated[str, typer.Argument(help="Host name, e.g. db-master-01.")]


def _lab(directory: Path) -> Lab:
    try:
        return Lab(directory, log=lambda message: console.print(message, markup=False, highlight=False))
    except LabError as exc:
        raise _fail(exc) from None


def _print_images(reports: list[BuildReport]) -> None:
    for image in reports:
        state = "cached" if image.cached else "built"
        console.print(f"  image {image.key:10} {state:6} {image.seconds:6.1f} s {image.size_bytes / 1e6:6.0f} MB  "
                      f"{image.ref}", soft_wrap=True, highlight=False)


def _fail(exc: LabError) -> typer.Exit:
    err_console.print(f"lab: {exc}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@lab_app.command()
def up(
    directory: DirOption = DEFAULT_DIR,
    topology: Annotated[str, typer.Option(help="small (tests), seed (the seed's roles that run here), "
                                               "roles:R1,R2 (the small lab's servers of these roles and their "
                                               "load balancers), hosts:N (N plain hosts).")] = "small",
    subnet: Annotated[str, typer.Option(help="Private subnet of this lab; one per running lab.")] = str(DEFAULT_SUBNET),
    engine: Annotated[Engine, typer.Option(
        help="Container engine of every host: podman (one shared image store) or docker (a dockerd per "
             "host, as on the servers; the images are loaded into each).")] = "podman",
) -> None:
    """Build images (cached), hosts and network, boot every host, and write the lab's site."""
    lab = _lab(directory)
    try:
        report = lab.up(topology, parse_subnet(subnet), engine)
    except LabError as exc:
        raise _fail(exc) from None
    _print_images(report.images)
    console.print(f"Lab up: {report.hosts} hosts in {report.seconds:.1f} s.  Site: {lab.site_dir}", soft_wrap=True)
    console.print(f"Next: keybuzz lint --site {lab.site_dir}   keybuzz lab status --dir {lab.dir}", soft_wrap=True)


@lab_app.command()
def down(directory: DirOption = DEFAULT_DIR) -> None:
    """Remove everything the lab made (processes, namespaces, bridge, mounts, folders); images stay cached."""
    lab = _lab(directory)
    try:
        lab.down()
    except LabError as exc:
        raise _fail(exc) from None
    console.print(f"Lab {lab.dir} removed.")


@lab_app.command()
def status(directory: DirOption = DEFAULT_DIR,
           as_json: JsonOption = False) -> None:
    """Hosts, IPs, up/down, link, memory and containers per host."""
    lab = _lab(directory)
    try:
        rows = lab.status()
    except LabError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"dir": str(lab.dir), "site": str(lab.site_dir), "hosts": [asdict(r) for r in rows]},
                              indent=2))
        return
    def link(r: HostStatus) -> str:
        state = "up" if r.link_up else "[yellow]down[/yellow]"
        return state + (f" [yellow]isolated from {', '.join(r.isolated_from)}[/yellow]" if r.isolated_from else "")

    console.print(table(f"lab {lab.dir} ({lab.subnet})",
                        ("=host", "=IP", "roles", "state", "link", "#procs", "#RSS MB", "containers"),
                        [(r.name, r.ip, f"lb {r.load_balancer}" if r.load_balancer else ",".join(r.roles),
                          "[green]up[/green]" if r.up else "[red]down[/red]", link(r), str(r.processes),
                          f"{r.rss_mb:.0f}", ", ".join(r.containers)) for r in rows]))
    console.print(f"{sum(r.up for r in rows)}/{len(rows)} hosts up, {sum(r.rss_mb for r in rows):.0f} MB RSS")


@lab_app.command()
def ssh(host: HostArg, directory: DirOption = DEFAULT_DIR,
        command: Annotated[list[str] | None, typer.Argument(help="Optional remote command.")] = None) -> None:
    """Open an SSH session on a host, exactly as the installer reaches it (lab key, strict host keys)."""
    lab = _lab(directory)
    try:
        argv = lab.ssh_argv(host, command or [], batch=False)
    except LabError as exc:
        raise _fail(exc) from None
    os.execvp(argv[0], argv)


@lab_app.command(name="exec")
def exec_(host: HostArg, command: Annotated[list[str], typer.Argument(help="Command (after --).")],
          directory: DirOption = DEFAULT_DIR) -> None:
    """Run a command inside a host's namespaces (no SSH); exits with its status. Options go before `--`."""
    lab = _lab(directory)
    try:
        argv = lab.enter_argv(host, command[1:] if command[:1] == ["--"] else command)
    except LabError as exc:
        raise _fail(exc) from None
    raise typer.Exit(subprocess.run(argv, cwd="/", check=False).returncode)


def _fault(action: str, host: str, directory: Path) -> None:
    lab = _lab(directory)
    try:
        result = getattr(lab, action)(host)
    except LabError as exc:
        raise _fail(exc) from None
    extra = f" (containers started: {', '.join(result)})" if result else ""
    console.print(f"{host}: {action} done{extra}")


@lab_app.command()
def poweroff(host: HostArg, directory: DirOption = DEFAULT_DIR) -> None:
    """Link down + SIGKILL of every process of the host: peers see silence, as with a pulled plug."""
    _fault("poweroff", host, directory)


@lab_app.command()
def crash(host: HostArg, directory: DirOption = DEFAULT_DIR) -> None:
    """SIGKILL of every process, link up: peers get connection resets."""
    _fault("crash", host, directory)


@lab_app.command()
def boot(host: HostArg, directory: DirOption = DEFAULT_DIR) -> None:
    """Power on: new PID 1, sshd, then every container with a restart policy (as dockerd at boot)."""
    _fault("boot", host, directory)


@lab_app.command()
def partition(host: HostArg, directory: DirOption = DEFAULT_DIR) -> None:
    """Link down only: the host keeps running, cut off from every peer."""
    _fault("partition", host, directory)


@lab_app.command()
def isolate(host: HostArg,
            peers: Annotated[str, typer.Option("--from", help="Comma-separated hosts or roles to cut it from "
                                                              "(e.g. db, or redis-02,redis-03).")],
            directory: DirOption = DEFAULT_DIR) -> None:
    """Cut a host from these peers only, both ways (packet filter in its own namespace): its clients, the
    load balancers and every other host still reach it. `lab heal` removes exactly that."""
    lab = _lab(directory)
    try:
        names = lab.isolate(host, [p.strip() for p in peers.split(",") if p.strip()])
    except LabError as exc:
        raise _fail(exc) from None
    console.print(f"{host}: isolated from {', '.join(names)}")


@lab_app.command()
def heal(host: HostArg, directory: DirOption = DEFAULT_DIR) -> None:
    """Link up again after a partition, and no isolation any more."""
    _fault("heal", host, directory)


@lab_app.command()
def images(image_root: Annotated[Path | None, typer.Option("--image-root", envvar="KEYBUZZ_LAB_IMAGES",
                                                           help="Image cache folder.")] = None) -> None:
    """Build the lab images that are missing (cached otherwise); print build time and size of each."""
    store = ImageStore(image_root, log=console.print) if image_root else ImageStore(log=console.print)
    if os.geteuid() != 0:
        raise _fail(LabError("building images needs root"))
    try:
        started = time.monotonic()
        reports = store.ensure()
    except LabError as exc:
        raise _fail(exc) from None
    _print_images(reports)
    console.print(f"{len(reports)} images ready in {time.monotonic() - started:.1f} s (store: {store.store})")
