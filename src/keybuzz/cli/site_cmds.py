"""`keybuzz init`, `inventory`, `lint` and `render`: the site and what it renders, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keybuzz.cli.options import DEFAULT_SITE, JsonOption, SiteOption
from keybuzz.cli.output import console, exit_input_errors, fail, load, print_json, say_error, table
from keybuzz.contract import Finding
from keybuzz.errors import InputErrors


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (or, with --credentials, an existing site).")],
    example: Annotated[str, typer.Option(help="Topology to write: seed (the seed's 49 servers).")] = "seed",
    credentials: Annotated[bool, typer.Option(
        "--credentials", help="In an existing site, only add missing credentials; existing values never change.")
    ] = False,
) -> None:
    """Write an example site (servers.tsv, keybuzz.yaml, versions.yaml, credentials/)."""
    from keybuzz.registry import credential_files, write_example_site
    from keybuzz.secrets import CredentialStore
    from keybuzz.site.loader import CREDENTIALS_DIR
    from keybuzz.site.writer import SiteExists

    try:
        if credentials:
            if not directory.is_dir():
                say_error(f"{directory} is not a site folder; run `keybuzz init {directory}` first")
                raise typer.Exit(2)
            added = CredentialStore(directory / CREDENTIALS_DIR).ensure(credential_files())
            console.print(f"{len(added)} credential(s) added: {', '.join(added) or 'none missing'}")
            return
        if example != "seed":
            say_error(f"unknown example {example!r}; available: seed")
            raise typer.Exit(2)
        added = write_example_site(directory)
    except InputErrors as exc:
        raise exit_input_errors(exc) from None
    except SiteExists as exc:
        say_error(f"{exc} (nothing was changed; pick a new folder)")
        raise typer.Exit(2) from None
    except OSError as exc:
        say_error(f"cannot write {directory}: {exc.strerror}")
        raise typer.Exit(1) from None
    console.print(f"Site written to {directory} ({len(added)} credentials generated, 0600 in credentials/).")
    console.print(f"Next: keybuzz lint --site {directory} && keybuzz inventory --site {directory}")


def inventory(site: SiteOption = DEFAULT_SITE,
              as_json: JsonOption = False) -> None:
    """The servers by role and the modules each one gets."""
    from keybuzz.registry import MODULES
    from keybuzz.site.servers import ROLES

    loaded = load(site)
    hosts = {m.name: {s.hostname for s in m.hosts(loaded)} for m in MODULES}
    rows = []
    for server in loaded.servers:
        modules = [f"{m.number} {m.name}" + ("" if m.implemented else " (not in this version)")
                   for m in MODULES if server.hostname in hosts[m.name]]
        rows.append({"hostname": server.hostname, "private_ip": str(server.private_ip),
                     "public_ip": str(server.public_ip or ""), "roles": list(server.roles),
                     "fqdn": server.fqdn, "modules": modules})
    by_role = {role: [s.hostname for s in loaded.with_role(role)] for role in ROLES if loaded.with_role(role)}
    if as_json:
        print_json({"servers": rows, "roles": by_role})
        return
    console.print(table(f"{len(rows)} servers in {site}, by role", ("=role", "#count", "servers"),
                        [(role, str(len(names)), ", ".join(names)) for role, names in by_role.items()]))
    ordered = sorted(rows, key=lambda r: (ROLES.index(r["roles"][0]), r["hostname"]))
    console.print(table("servers and the modules they get", ("=hostname", "=private IP", "public IP", "roles",
                                                             "modules"),
                        [(r["hostname"], r["private_ip"], r["public_ip"], ",".join(r["roles"]), ", ".join(r["modules"]))
                         for r in ordered]))


def lint(site: SiteOption = DEFAULT_SITE,
         as_json: JsonOption = False) -> None:
    """Check the site and the rendered output against the design rules; exit 1 on any error."""
    from keybuzz.lint import lint as run_lint

    findings = run_lint(load(site))
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        print_json({"findings": [f.__dict__ for f in findings], "errors": errors})
    else:
        console.print(lint_table(f"lint {site}", findings))
        console.print(f"{errors} error(s), {sum(f.severity == 'warning' for f in findings)} warning(s)")
    if errors:
        raise typer.Exit(1)


def lint_table(title: str, findings: list[Finding]) -> Table:
    style = {"error": "red", "warning": "yellow", "info": "dim"}
    return table(title, ("=rule", "=severity", "where", "message", "fix"),
                 [(f.rule, f.severity, f.where, f.message, f.hint) for f in findings],
                 [style[f.severity] for f in findings])


def render(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write, one subfolder per host.")],
    site: SiteOption = DEFAULT_SITE,
    module: Annotated[str | None, typer.Option("--module", "-m", help="Only this module (name or number).")] = None,
) -> None:
    """Write, per host, every file and container a module would put there (offline; secrets redacted)."""
    from keybuzz.registry import module_by_name
    from keybuzz.render_output import RenderRefused, write_render

    loaded = load(site)
    if module:
        try:
            chosen = module_by_name(module)
        except KeyError as exc:
            raise fail(exc.args[0]) from None
        modules = [chosen]
    else:
        modules = None
    try:
        summary = write_render(loaded, out, modules)
    except RenderRefused as exc:
        raise fail(str(exc)) from None
    for message in summary.pending:
        console.print(f"[yellow]{message}[/yellow]")
    console.print(f"{summary.files} files and {summary.containers} containers for {summary.hosts} hosts "
                  f"written to {out}")


def register(app: typer.Typer) -> None:
    for command in (init, inventory, lint, render):
        app.command()(command)
