"""The `keybuzz` command. Exit codes: 0 ok, 1 something failed, 2 bad input or usage."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keybuzz.cli_options import DEFAULT_SITE, JsonOption, SiteOption
from keybuzz.errors import InputErrors
from keybuzz.lab.cli import lab_app
from keybuzz.secrets import redact

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Install and operate the KeyBuzz HA platform from one site folder.")
# Piped output (CI logs, `| less`) gets wide tables instead of Rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def _redacted_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """An unexpected crash still prints its traceback, with every secret value replaced by ***."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


sys.excepthook = _redacted_excepthook
app.add_typer(lab_app, name="lab")



def say_error(message: str) -> None:
    """One error line on stderr: redacted, no Rich markup, never wrapped (editors jump to file:line)."""
    err_console.print(redact(message), markup=False, highlight=False, soft_wrap=True)


def exit_input_errors(exc: InputErrors) -> typer.Exit:
    """Print every input error as file:line: message (hint) and exit 2."""
    for error in exc.errors:
        say_error(str(error))
    err_console.print(f"{len(exc.errors)} error(s); nothing was changed.", style="bold red")
    return typer.Exit(2)


def load(site_dir: Path, **kwargs):
    from keybuzz.site import load_site

    try:
        return load_site(site_dir, **kwargs)
    except InputErrors as exc:
        raise exit_input_errors(exc) from None


def print_json(data: object) -> None:
    """Machine output: redacted like every other output."""
    typer.echo(redact(json.dumps(data, indent=2, sort_keys=True, default=str)))


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (or, with --credentials, an existing site).")],
    example: Annotated[str, typer.Option(help="Topology to write: seed (the seed's 49 servers).")] = "seed",
    credentials: Annotated[bool, typer.Option(
        "--credentials", help="In an existing site, only add missing credentials; existing values never change.")
    ] = False,
) -> None:
    """Write an example site (servers.tsv, keybuzz.yaml, versions.yaml, credentials/)."""
    from keybuzz.secrets import CredentialStore
    from keybuzz.site import example as examples
    from keybuzz.site.loader import CREDENTIALS_DIR
    from keybuzz.site.writer import SiteExists, write_site

    try:
        if credentials:
            if not directory.is_dir():
                say_error(f"{directory} is not a site folder; run `keybuzz init {directory}` first")
                raise typer.Exit(2)
            added = CredentialStore(directory / CREDENTIALS_DIR).ensure()
            console.print(f"{len(added)} credential(s) added: {', '.join(added) or 'none missing'}")
            return
        if example != "seed":
            say_error(f"unknown example {example!r}; available: seed")
            raise typer.Exit(2)
        added = write_site(directory, examples.seed_servers(), examples.seed_config(),
                           examples.seed_versions(), examples.SEED_COMMENT)
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


@app.command()
def inventory(site: SiteOption = DEFAULT_SITE,
              as_json: JsonOption = False) -> None:
    """The servers by role and the modules each one gets."""
    from keybuzz.modules import MODULES
    from keybuzz.site.servers import ROLES

    loaded = load(site)
    rows = []
    for server in loaded.servers:
        modules = [f"{m.number} {m.name}" + ("" if m.implemented else " (pending)")
                   for m in MODULES if any(server.has(r) for r in m.roles)]
        rows.append({"hostname": server.hostname, "private_ip": str(server.private_ip),
                     "public_ip": str(server.public_ip or ""), "roles": list(server.roles),
                     "fqdn": server.fqdn, "modules": modules})
    by_role = {role: [s.hostname for s in loaded.with_role(role)] for role in ROLES if loaded.with_role(role)}
    if as_json:
        print_json({"servers": rows, "roles": by_role})
        return
    roles_table = Table(title=f"{len(rows)} servers in {site}, by role")
    for column in ("role", "count", "servers"):
        roles_table.add_column(column, overflow="fold")
    for role, names in by_role.items():
        roles_table.add_row(role, str(len(names)), ", ".join(names))
    console.print(roles_table)
    table = Table(title="servers and the modules they get")
    for column in ("hostname", "private IP", "public IP", "roles", "modules"):
        table.add_column(column)
    for row in sorted(rows, key=lambda r: (ROLES.index(r["roles"][0]), r["hostname"])):
        table.add_row(row["hostname"], row["private_ip"], row["public_ip"], ",".join(row["roles"]),
                      ", ".join(row["modules"]))
    console.print(table)


@app.command()
def lint(site: SiteOption = DEFAULT_SITE,
         as_json: JsonOption = False) -> None:
    """Check the site and the rendered output against the design rules; exit 1 on any error."""
    from keybuzz.lint import lint as run_lint

    findings = run_lint(load(site))
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        print_json({"findings": [f.__dict__ for f in findings], "errors": errors})
    else:
        table = Table(title=f"lint {site}")
        for column in ("rule", "severity", "where", "message", "fix"):
            table.add_column(column, overflow="fold")
        style = {"error": "red", "warning": "yellow", "info": "dim"}
        for f in findings:
            table.add_row(f.rule, f.severity, f.where, f.message, f.hint, style=style[f.severity])
        console.print(table)
        console.print(f"{errors} error(s), {sum(f.severity == 'warning' for f in findings)} warning(s)")
    if errors:
        raise typer.Exit(1)


@app.command()
def render(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write, one subfolder per host.")],
    site: SiteOption = DEFAULT_SITE,
    module: Annotated[str | None, typer.Option("--module", "-m", help="Only this module (name or number).")] = None,
) -> None:
    """Write, per host, every file and container a module would put there (offline; secrets redacted)."""
    from keybuzz.modules import module_by_name
    from keybuzz.render_output import RenderRefused, write_render

    loaded = load(site)
    if module:
        try:
            chosen = module_by_name(module)
        except KeyError as exc:
            say_error(exc.args[0])
            raise typer.Exit(2) from None
        modules = [chosen]
    else:
        modules = None
    try:
        summary = write_render(loaded, out, modules)
    except RenderRefused as exc:
        say_error(str(exc))
        raise typer.Exit(2) from None
    for message in summary.pending:
        console.print(f"[yellow]{message}[/yellow]")
    console.print(f"{summary.files} files and {summary.containers} containers for {summary.hosts} hosts "
                  f"written to {out}")


from keybuzz.cli_ops import register as _register_ops  # noqa: E402  (needs `app`; cli_ops imports cli lazily)

_register_ops(app)

from keybuzz.cli_drills import register as _register_drills  # noqa: E402  (needs `app`)

_register_drills(app)
