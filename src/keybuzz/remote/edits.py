"""Edits of files the platform does not own (a line in a file, a sysctl), idempotent, with dry-run."""

from __future__ import annotations

import base64
import re
import shlex
import time

from keybuzz.remote.actions import Action, write_command
from keybuzz.remote.converge import Reporter
from keybuzz.remote.diff import file_diff
from keybuzz.remote.ssh import SshHost
from keybuzz.render import FileSpec

SYSCTL_FILE = "/etc/sysctl.d/99-keybuzz.conf"


def with_line(text: str, line: str, match: str | None = None) -> str:
    """`text` with `line` present once: it replaces the lines matching regex `match` (at the first
    one's place), or is appended. Everything else is kept byte for byte."""
    lines = text.splitlines()
    pattern = re.compile(match) if match else None
    out: list[str] = []
    placed = False
    for current in lines:
        hit = current == line or bool(pattern and pattern.search(current))
        if hit and not placed:
            out.append(line)
            placed = True
        elif not hit:
            out.append(current)
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


async def _read(host: SshHost, path: str) -> tuple[str | None, int, str]:
    """Content (None when absent), mode and owner (uid:gid) of a file, in one round-trip."""
    quoted = shlex.quote(path)
    out = (await host.shell(f"if [ -f {quoted} ]; then stat -c '%a %u:%g' -- {quoted}; base64 -w0 -- {quoted}; "
                            "else echo absent; fi")).stdout.splitlines()
    if not out or out[0] == "absent":
        return None, 0o644, "root"
    mode, owner = out[0].split()
    return base64.b64decode(out[1] if len(out) > 1 else "").decode(errors="replace"), int(mode, 8), owner


async def ensure_line(host: SshHost, path: str, line: str, *, match: str | None, dry_run: bool,
                      reporter: Reporter) -> int:
    """Returns 1 when the file changed (or would), 0 when the line was already there."""
    old, mode, owner = await _read(host, path)
    new = with_line(old or "", line, match)
    if old is not None and new == old:
        return 0
    spec = FileSpec(path, new, mode=mode, owner=owner)
    action = Action("line", path, "create" if old is None else "edit", write_command(path, mode, owner, spec.sha256),
                    stdin=new, file=spec)
    started = time.monotonic()
    if dry_run:
        reporter.show(file_diff(host.hostname, Action("file", path, action.summary, "", file=spec), old))
        reporter.action(host.hostname, action.step, "would-change", 0.0)
        return 1
    await host.shell(action.command, stdin=action.stdin)
    reporter.action(host.hostname, action.step, "changed", time.monotonic() - started)
    return 1


async def ensure_sysctl(host: SshHost, key: str, value: str, *, dry_run: bool, reporter: Reporter) -> int:
    """Persist `key = value` in 99-keybuzz.conf and apply it live when the running value differs."""
    if not re.fullmatch(r"[a-z0-9_.\-/]+", key):
        raise ValueError(f"not a sysctl key: {key!r}")
    changes = await ensure_line(host, SYSCTL_FILE, f"{key} = {value}", match=rf"^\s*{re.escape(key)}\s*=",
                                dry_run=dry_run, reporter=reporter)
    live = (await host.run(["sysctl", "-n", key], check=False)).stdout
    if " ".join(live.split()) == " ".join(value.split()):
        return changes
    step = f"sysctl {key}: {' '.join(live.split()) or '?'} -> {value}"
    if dry_run:
        reporter.show(f"# {host.hostname} {step}")
        reporter.action(host.hostname, step, "would-change", 0.0)
        return changes + 1
    started = time.monotonic()
    await host.run(["sysctl", "-w", f"{key}={value}"])
    reporter.action(host.hostname, step, "changed", time.monotonic() - started)
    return changes + 1
