"""Change detection: a host's plan against its probed state -> the few actions that differ. Pure.

Each action carries its shell command; file content travels on stdin (never in argv), so secret
files never show up in `ps`, logs or exceptions. Containers are recreated only when the spec hash
label differs (image, args, env-file and restart_on file hashes), started when not running, and
otherwise left alone.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field

from keybuzz.containers import ContainerSpec
from keybuzz.errors import OperationFailed
from keybuzz.remote.probe import HostState, PathState, owner_matches
from keybuzz.render import DirSpec, FileSpec, HostPlan

STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Action:
    """One change on one host. `restarts` counts container processes (re)started by it."""

    kind: str  # directory, file, metadata, container, remove
    target: str
    summary: str
    command: str
    stdin: str | None = field(default=None, repr=False)  # file contents, secrets included
    restarts: int = 0
    file: FileSpec | None = None

    @property
    def step(self) -> str:
        return f"{self.kind} {self.target}: {self.summary}"


def _mode_owner(current: PathState, mode: int, owner: str) -> list[str]:
    changes = []
    if current.mode != mode:
        changes.append(f"mode {current.mode:04o} -> {mode:04o}")
    if not owner_matches(owner, current.owner_names, current.owner_ids):
        changes.append(f"owner {current.owner_names} -> {owner}")
    return changes


def _q(value: str) -> str:
    return shlex.quote(value)


def directory_action(spec: DirSpec, current: PathState) -> Action | None:
    fix = f"chown {_q(spec.owner)} {_q(spec.path)} && chmod {spec.mode:04o} {_q(spec.path)}"
    if not current.present:
        return Action("directory", spec.path, "create", f"mkdir -p {_q(spec.path)} && {fix}")
    if current.kind != "directory":
        raise OperationFailed(f"{spec.path} exists and is not a directory ({current.kind})",
                              step=f"directory {spec.path}")
    changes = _mode_owner(current, spec.mode, spec.owner)
    return Action("directory", spec.path, ", ".join(changes), fix) if changes else None


def write_command(path: str, mode: int, owner: str, sha256: str) -> str:
    """Atomic write from stdin: temp file created 0600, checked against the expected hash (a cut
    SSH channel ends `cat` with a truncated file and status 0), owned and moded, then renamed."""
    tmp = f"{path}.keybuzz-tmp"
    return (f"set -e; mkdir -p {_q(posixpath.dirname(path))}; umask 077; cat > {_q(tmp)}; "
            f"echo {_q(f'{sha256}  {tmp}')} | sha256sum -c --status || {{ rm -f {_q(tmp)}; exit 1; }}; "
            f"chown {_q(owner)} {_q(tmp)}; chmod {mode:04o} {_q(tmp)}; mv -f {_q(tmp)} {_q(path)}")


def file_action(spec: FileSpec, current: PathState) -> Action | None:
    if current.present and current.kind != "file":
        raise OperationFailed(f"{spec.path} exists and is not a regular file ({current.kind})",
                              step=f"file {spec.path}")
    if current.present and spec.create_only:
        return None  # the service owns it after the first write (e.g. sentinel.conf)
    if not current.present or current.sha256 != spec.sha256:
        summary = "create" if not current.present else "content"
        return Action("file", spec.path, summary, write_command(spec.path, spec.mode, spec.owner, spec.sha256),
                      stdin=spec.content, file=spec)
    changes = _mode_owner(current, spec.mode, spec.owner)
    if not changes:
        return None
    command = f"chown {_q(spec.owner)} {_q(spec.path)} && chmod {spec.mode:04o} {_q(spec.path)}"
    return Action("metadata", spec.path, ", ".join(changes), command, file=spec)


def stop_and_remove(cli: str, name: str) -> str:
    """Graceful stop (databases flush), then remove; both tolerate an absent container."""
    return (f"{_q(cli)} stop -t {STOP_TIMEOUT_S} {_q(name)} >/dev/null 2>&1 || true; "
            f"{_q(cli)} rm -f {_q(name)} >/dev/null 2>&1 || true")


def watched_hashes(plan: HostPlan, state: HostState) -> dict[str, str]:
    """Hashes of files that feed spec hashes: the rendered content when we manage the file, else the host's.

    A create_only file belongs to the service after the first write (Sentinel rewrites its config):
    it never triggers a recreate, whatever its content.
    """
    hashes = {path: current.sha256 for path, current in state.paths.items() if current.sha256}
    hashes.update({spec.path: "create-only" if spec.create_only else spec.sha256 for spec in plan.files})
    return hashes


def container_action(spec: ContainerSpec, state: HostState, cli: str, hashes: dict[str, str]) -> Action | None:
    wanted = spec.spec_hash(hashes)
    run = shlex.join(spec.run_argv(cli, wanted))
    current = state.containers.get(spec.name)
    if current is None:
        return Action("container", spec.name, "create", f"{run} >/dev/null", restarts=1)
    if current.spec_hash != wanted:
        summary = f"recreate (spec {current.spec_hash or 'unlabelled'} -> {wanted})"
        # The new image is there before the old container goes: a failed pull leaves the service running.
        image = _q(spec.image)
        ensure_image = f"{{ {_q(cli)} image inspect {image} >/dev/null 2>&1 || {_q(cli)} pull -q {image} >/dev/null; }}"
        return Action("container", spec.name, summary,
                      f"set -e; {ensure_image}; {stop_and_remove(cli, spec.name)}; {run} >/dev/null", restarts=1)
    if not current.running:
        return Action("container", spec.name, f"start (was {current.state})", f"{_q(cli)} start {_q(spec.name)}",
                      restarts=1)
    return None


def plan_actions(plan: HostPlan, state: HostState, cli: str) -> list[Action]:
    """Directories, then files, then containers (env files exist before a container starts)."""
    actions: list[Action | None] = [directory_action(d, state.path(d.path)) for d in plan.directories]
    actions += [file_action(f, state.path(f.path)) for f in plan.files]
    if plan.containers:
        if state.container_error:
            raise OperationFailed(f"`{cli} ps` failed: {state.container_error}", step="list containers")
        hashes = watched_hashes(plan, state)
        actions += [container_action(c, state, cli, hashes) for c in plan.containers]
    return [a for a in actions if a is not None]


def probed_paths(plan: HostPlan) -> set[str]:
    paths = {d.path for d in plan.directories} | {f.path for f in plan.files}
    for container in plan.containers:
        paths.update(container.restart_on)
        if container.env_file:
            paths.add(container.env_file)
    return paths


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _safe_to_remove(path: str) -> bool:
    """Refuse to rm -rf a top-level folder (/, /opt, /etc...) whatever a module renders."""
    return posixpath.normpath(path).count("/") >= 2


def removal_actions(plan: HostPlan, state: HostState, cli: str, module: str, *, purge_data: bool) -> list[Action]:
    """Cleanup: the module's containers (by name and by label), files, then folders deepest first.

    Data folders (DirSpec.data), and any folder that holds one, are kept unless purge_data.
    """
    if state.container_error:  # never delete the configs of containers we could not see, let alone stop
        raise OperationFailed(f"`{cli} ps` failed: {state.container_error}", step="list containers")
    actions: list[Action] = []
    names = {c.name for c in plan.containers} | {n for n, c in state.containers.items() if c.module == module}
    for name in sorted(names):
        if name in state.containers:
            actions.append(Action("remove", f"container {name}", "stop and remove", stop_and_remove(cli, name)))
    for spec in plan.files:
        if state.path(spec.path).present:
            actions.append(Action("remove", spec.path, "delete file", f"rm -f {_q(spec.path)}"))
    data_dirs = [d.path for d in plan.directories if d.data]
    for spec in sorted(plan.directories, key=lambda d: d.path.count("/"), reverse=True):
        holds_data = any(_is_under(data, spec.path) for data in data_dirs)
        if holds_data and not purge_data:
            continue
        if not state.path(spec.path).present:
            continue
        if not _safe_to_remove(spec.path):
            raise OperationFailed(f"refusing to remove top-level folder {spec.path}", step=f"remove {spec.path}")
        summary = "delete data folder" if holds_data else "delete folder"
        actions.append(Action("remove", spec.path, summary, f"rm -rf -- {_q(spec.path)}"))
    return actions
