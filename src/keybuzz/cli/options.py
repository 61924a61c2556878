"""Options every `keybuzz` command spells the same way (one definition, imported by each CLI module)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SiteOption = Annotated[Path, typer.Option("--site", "-s", envvar="KEYBUZZ_SITE",
                                          help="Site folder (servers.tsv, keybuzz.yaml, ...).")]
DEFAULT_SITE = Path("site")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
