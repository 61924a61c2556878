"""Converge one host: probe once, act only on differences; in dry-run print diffs and change nothing."""

from __future__ import annotations

import base64
import hashlib
import secrets
import shlex
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from keybuzz.containers import ContainerCli
from keybuzz.errors import OperationFailed
from keybuzz.poll import describe
from keybuzz.remote.actions import Action, plan_actions, probed_paths, removal_actions
from keybuzz.remote.diff import action_line, file_diff
from keybuzz.remote.probe import HostState, parse_probe, probe_script
from keybuzz.remote.ssh import SshHost
from keybuzz.render import HostPlan
from keybuzz.secrets import redact

# A secret file is never read back for a diff: its current content shows as one redacted line.
REDACTED_PLACEHOLDER = "\n"


class Reporter(Protocol):
    """Where per-action lines go (install.log) and what the operator sees (dry-run diffs)."""

    def action(self, host: str, step: str, result: str, duration: float) -> None: ...

    def show(self, text: str) -> None: ...


@dataclass
class HostOutcome:
    """What happened on one host: the actions done (or, in dry-run, due) and the error that stopped it."""

    hostname: str
    actions: list[Action] = field(default_factory=list)
    error: str = ""

    @property
    def changes(self) -> int:
        return len(self.actions)

    @property
    def restarts(self) -> int:
        return sum(a.restarts for a in self.actions)


async def probe(host: SshHost, paths: Iterable[str], container_cli: str | None,
                services: Iterable[str] = (), *, mounts: bool = False) -> HostState:
    result = await host.shell(probe_script(paths, container_cli, services=services, mounts=mounts))
    return parse_probe(result.stdout)


async def fetch_contents(host: SshHost, paths: list[str]) -> dict[str, str]:
    """Current text of several files in one round-trip (dry-run diffs only; never secret files)."""
    if not paths:
        return {}
    marker = f"==keybuzz-{secrets.token_hex(8)}=="
    script = "; ".join(f"echo {shlex.quote(marker + ' ' + p)}; base64 -w0 -- {shlex.quote(p)} 2>/dev/null; echo"
                       for p in paths)
    lines = (await host.shell(script)).stdout.splitlines()
    contents: dict[str, str] = {}
    for index, line in enumerate(lines[:-1]):
        if line.startswith(marker + " "):
            contents[line[len(marker) + 1:]] = base64.b64decode(lines[index + 1]).decode(errors="replace")
    return contents


def _checked_source(action: Action) -> str:
    """The control machine's file to upload, refused unless it has the pinned sha256."""
    assert action.upload is not None
    digest = hashlib.sha256()
    with open(action.upload, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != action.upload_sha256:
        raise OperationFailed(f"{action.upload} has sha256 {digest.hexdigest()}, pinned {action.upload_sha256}: "
                              f"refusing to install it as {action.target}", step=action.step)
    return action.upload


async def _apply(host: SshHost, actions: list[Action], reporter: Reporter, outcome: HostOutcome) -> None:
    """One command per action, in order; each one done is recorded, so a failure still counts what changed."""
    for action in actions:
        started = time.monotonic()
        try:
            if action.upload:
                await host.put(_checked_source(action), f"{action.target}.keybuzz-tmp")
            await host.shell(action.command, stdin=action.stdin)
        except Exception:
            reporter.action(host.hostname, action.step, "failed", time.monotonic() - started)
            raise
        outcome.actions.append(action)
        reporter.action(host.hostname, action.step, "changed", time.monotonic() - started)


async def _show(host: SshHost, actions: list[Action], state: HostState, reporter: Reporter) -> None:
    readable = [a.file.path for a in actions
                if a.kind == "file" and a.file and not a.file.secret and state.path(a.file.path).present]
    old = await fetch_contents(host, readable)
    for action in actions:
        if action.kind in ("file", "metadata") and action.file is not None:
            present = state.path(action.file.path).present
            current = old.get(action.file.path, "") if not action.file.secret else REDACTED_PLACEHOLDER
            reporter.show(file_diff(host.hostname, action, current if present else None))
        else:
            reporter.show(action_line(host.hostname, action))
        reporter.action(host.hostname, action.step, "would-change", 0.0)


async def _guarded(outcome: HostOutcome, work: Awaitable[None]) -> HostOutcome:
    """A host's failure becomes its outcome's error: the engine reports it, other hosts go on."""
    try:
        await work
    except Exception as exc:
        outcome.error = redact(str(exc)) or describe(exc)
    return outcome


async def due_actions(host: SshHost, plan: HostPlan, cli: ContainerCli) -> tuple[HostState, list[Action]]:
    """What converging `plan` would do on the host now: one probe, nothing changed."""
    state = await probe(host, probed_paths(plan), cli.name if plan.containers else None,
                        [s.name for s in plan.services])
    return state, plan_actions(plan, state, cli)


async def converge_host(host: SshHost, plan: HostPlan, cli: ContainerCli, *, dry_run: bool,
                        reporter: Reporter) -> HostOutcome:
    outcome = HostOutcome(host.hostname)

    async def work() -> None:
        state, actions = await due_actions(host, plan, cli)
        if dry_run:
            await _show(host, actions, state, reporter)
            outcome.actions = actions
        else:
            await _apply(host, actions, reporter, outcome)

    return await _guarded(outcome, work())


async def remove_host(host: SshHost, plan: HostPlan, cli: ContainerCli, module: str, *, purge_data: bool,
                      module_dirs: tuple[str, ...], dry_run: bool, reporter: Reporter) -> HostOutcome:
    outcome = HostOutcome(host.hostname)

    async def work() -> None:
        state = await probe(host, probed_paths(plan), cli.name, [s.name for s in plan.services], mounts=purge_data)
        actions = removal_actions(plan, state, cli, module, purge_data=purge_data, module_dirs=module_dirs)
        if dry_run:
            for action in actions:
                reporter.show(action_line(host.hostname, action))
                reporter.action(host.hostname, action.step, "would-change", 0.0)
            outcome.actions = actions
        else:
            await _apply(host, actions, reporter, outcome)

    return await _guarded(outcome, work())
