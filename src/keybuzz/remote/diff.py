"""Dry-run output: a unified diff per host and file. Secret files show `<redacted>` lines only."""

from __future__ import annotations

import difflib

from keybuzz.remote.actions import Action
from keybuzz.secrets import redact

REDACTED_LINE = "<redacted>"


def _secret_diff(old: list[str], new: list[str], fromfile: str, tofile: str) -> list[str]:
    """Same shape as a unified diff (one hunk), with every line replaced: counts show, values never."""
    lines = [f"--- {fromfile}", f"+++ {tofile}", f"@@ -{1 if old else 0},{len(old)} +{1 if new else 0},{len(new)} @@"]
    lines += [f"-{REDACTED_LINE}"] * len(old) + [f"+{REDACTED_LINE}"] * len(new)
    return lines


def file_diff(host: str, action: Action, old: str | None) -> str:
    """The diff for one file action; `old` is the host's current content (None when absent)."""
    spec = action.file
    if spec is None:
        raise ValueError("file_diff needs a file action")
    fromfile = f"{host}:{spec.path}" if old is not None else "/dev/null"
    tofile = f"{host}:{spec.path}"
    header = f"# {host} {spec.path}: {action.summary} (mode {spec.mode:04o}, owner {spec.owner}"
    header += ", secret)" if spec.secret else ")"
    if action.kind == "metadata":
        return header
    old_lines = (old or "").splitlines() if old is not None else []
    new_lines = spec.text.splitlines()
    if spec.secret:
        body = _secret_diff(old_lines, new_lines, fromfile, tofile)
    else:
        body = list(difflib.unified_diff(old_lines, new_lines, fromfile=fromfile, tofile=tofile, lineterm=""))
    return redact("\n".join([header, *body]))


def action_line(host: str, action: Action) -> str:
    """A one-line description for everything that is not a file diff (containers, folders, removals)."""
    return redact(f"# {host} {action.kind} {action.target}: {action.summary}")
