"""Lab errors and the one way the lab runs machine commands (so failures name the command)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class LabError(Exception):
    """The lab could not do what was asked; the message says what and how to fix it."""


def run(argv: Sequence[str], *, check: bool = True, input_text: str | None = None,
        timeout: float = 600.0, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    """Run a machine command from `/` (an inherited cwd is invisible inside hosts)."""
    try:
        result = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                                timeout=timeout, cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` timed out after {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found: run scripts/setup-machine.sh") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LabError(f"`{' '.join(argv)}` failed ({result.returncode}): " + " | ".join(detail))
    return result
