"""What every command prints and how it fails: one console, redacted errors, exit codes.

Exit codes: 0 ok, 1 something failed, 2 bad input or usage. Piped output (CI logs, `| less`)
gets wide tables instead of Rich's 80-column fallback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keybuzz.errors import InputErrors, OperationFailed
from keybuzz.secrets import redact

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def say_error(message: str) -> None:
    """One error line on stderr: redacted, no Rich markup, never wrapped (editors jump to file:line)."""
    err_console.print(redact(message), markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    say_error(message)
    return typer.Exit(code)


def exit_input_errors(exc: InputErrors) -> typer.Exit:
    """Print every input error as file:line: message (hint) and exit 2."""
    for error in exc.errors:
        say_error(str(error))
    err_console.print(f"{len(exc.errors)} error(s); nothing was changed.", style="bold red")
    return typer.Exit(2)


def load(site_dir: Path, **kwargs):  # type: ignore[no-untyped-def]
    """The site, validated against the registry; input errors end the command (exit 2)."""
    from keybuzz.registry import load_site

    try:
        return load_site(site_dir, **kwargs)
    except InputErrors as exc:
        raise exit_input_errors(exc) from None


def print_json(data: object) -> None:
    """Machine output: redacted like every other output."""
    typer.echo(redact(json.dumps(data, indent=2, sort_keys=True, default=str)))


def report_failure(exc: OperationFailed) -> None:
    from keybuzz.logs import get_logger

    where = ", ".join(f"{label} {value}" for label, value in
                      (("module", exc.module), ("host", exc.host), ("step", exc.step)) if value)
    get_logger("engine").error("result=stopped %s error=%s resume=%s", where, exc, exc.resume)
    err_console.print(f"[bold red]FAILED[/bold red] ({escape(redact(where))})", highlight=False)
    say_error(str(exc))
    if exc.resume:
        err_console.print(f"Fix the cause, then resume with:\n  {exc.resume}", markup=False, highlight=False)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]],
          styles: Iterable[str | None] | None = None) -> Table:
    """A table whose identifying columns never truncate: a column named with a leading `=` (host, IP,
    module ...) is as wide as its longest cell; the others fold onto more lines, and `#`-prefixed ones
    are right-aligned numbers. On a narrow terminal or a pipe, text wraps; names stay whole."""
    rows = [list(row) for row in rows]
    result = Table(title=title)
    for index, column in enumerate(columns):
        name = column.lstrip("=#")
        if column.startswith("="):
            width = max([len(name), *(len(Text.from_markup(row[index]).plain) for row in rows)])
            result.add_column(name, no_wrap=True, min_width=width)
        elif column.startswith("#"):
            result.add_column(name, justify="right", no_wrap=True)
        else:
            result.add_column(name, overflow="fold")
    for row, style in zip(rows, styles or [None] * len(rows), strict=True):
        result.add_row(*row, style=style)
    return result
