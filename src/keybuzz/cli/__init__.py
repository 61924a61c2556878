"""The `keybuzz` command: one Typer app; each submodule registers its commands, none holds logic of its own."""

from __future__ import annotations

import sys
import traceback
from types import TracebackType

import typer

from keybuzz.cli import drills, lab, ops, site_cmds
from keybuzz.secrets import redact

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Install and operate the KeyBuzz HA platform from one site folder.")


def _redacted_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """An unexpected crash still prints its traceback, with every secret value replaced by ***."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


sys.excepthook = _redacted_excepthook
for commands in (site_cmds, ops, drills):
    commands.register(app)
app.add_typer(lab.lab_app, name="lab")

__all__ = ["app"]
