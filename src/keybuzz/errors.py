"""Error types shared by every layer: input errors are collected, never raised one by one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class InputError:
    """One problem in a file the user edits, located so an editor can jump to it."""

    file: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}: {self.message}{hint}"


class InputErrors(Exception):
    """Raised once with every input error found, so the user fixes them all in one pass."""

    def __init__(self, errors: list[InputError]):
        self.errors = sorted(set(errors))
        super().__init__("\n".join(str(e) for e in self.errors))


class OperationFailed(Exception):
    """A remote step failed; carries what is needed to tell the operator where and how to resume."""

    def __init__(self, message: str, *, host: str = "", module: str = "", step: str = "", resume: str = ""):
        self.host, self.module, self.step, self.resume = host, module, step, resume
        super().__init__(message)


def display_path(path: Path) -> str:
    """Paths in messages are shown as given; relative when under the working directory."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
