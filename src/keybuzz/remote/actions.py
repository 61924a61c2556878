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

from keybuzz import services as systemd
from keybuzz.containers import STOP_TIMEOUT_S, ContainerCli, ContainerSpec
from keybuzz.errors import OperationFailed
from keybuzz.remote.probe import HostState, PathState, owner_matches
from keybuzz.render import DirSpec, FileSpec, HostPlan, HostService


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
    upload: str | None = None  # a control-machine file copied (SFTP) to `target`.keybuzz-tmp before `command`
    upload_sha256: str = ""  # its pinned checksum, checked on the control machine before the copy

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
                      stdin=spec.text, file=spec)
    changes = _mode_owner(current, spec.mode, spec.owner)
    if not changes:
        return None
    command = f"chown {_q(spec.owner)} {_q(spec.path)} && chmod {spec.mode:04o} {_q(spec.path)}"
    return Action("metadata", spec.path, ", ".join(changes), command, file=spec)


def stop_and_remove(cli: ContainerCli, name: str, timeout_s: int) -> str:
    """Graceful stop (databases flush), then remove; both tolerate an absent container."""
    return (f"{shlex.join(cli.stop(name, timeout_s=timeout_s))} >/dev/null 2>&1 || true; "
            f"{shlex.join(cli.remove(name))} >/dev/null 2>&1 || true")


def watched_hashes(plan: HostPlan, state: HostState) -> dict[str, str]:
    """Hashes of files that feed spec hashes: the rendered content when we manage the file, else the host's.

    A create_only file belongs to the service after the first write (Sentinel rewrites its config):
    it never triggers a recreate, whatever its content.
    """
    hashes = {path: current.sha256 for path, current in state.paths.items() if current.sha256}
    hashes.update({spec.path: "create-only" if spec.create_only else spec.sha256 for spec in plan.files})
    return hashes


def container_action(spec: ContainerSpec, state: HostState, cli: ContainerCli,
                     hashes: dict[str, str]) -> Action | None:
    wanted = spec.spec_hash(hashes)
    run = shlex.join(cli.run(spec, wanted))
    current = state.containers.get(spec.name)
    if current is None:
        return Action("container", spec.name, "create", f"{run} >/dev/null", restarts=1)
    if current.spec_hash != wanted:
        summary = f"recreate (spec {current.spec_hash or 'unlabelled'} -> {wanted})"
        # The new image is there before the old container goes: a failed pull leaves the service running.
        ensure_image = (f"{{ {shlex.join(cli.image_present(spec.image))} >/dev/null 2>&1 || "
                        f"{shlex.join(cli.pull(spec.image))} >/dev/null; }}")
        return Action("container", spec.name, summary,
                      f"set -e; {ensure_image}; {stop_and_remove(cli, spec.name, spec.stop_timeout_s)}; "
                      f"{run} >/dev/null", restarts=1)
    if not current.running:
        return Action("container", spec.name, f"start (was {current.state})", shlex.join(cli.start(spec.name)),
                      restarts=1)
    return None


def install_binary_command(path: str, sha256: str) -> str:
    """After the upload to `path`.keybuzz-tmp: checked against the pinned hash, 0755 root, renamed."""
    tmp = f"{path}.keybuzz-tmp"
    return (f"set -e; echo {_q(f'{sha256}  {tmp}')} | sha256sum -c --status || {{ rm -f {_q(tmp)}; "
            f"echo 'uploaded binary does not match the pinned sha256' >&2; exit 1; }}; "
            f"chown root:root {_q(tmp)}; chmod 0755 {_q(tmp)}; mv -f {_q(tmp)} {_q(path)}")


def service_actions(spec: HostService, state: HostState, hashes: dict[str, str]) -> list[Action]:
    """Binary (when its sha256 differs), unit file, then restart when either changed, start when inactive."""
    actions: list[Action] = []
    current = state.path(spec.binary)
    if current.sha256 != spec.sha256:
        actions.append(Action("binary", spec.binary, "install" if not current.present else "replace",
                              install_binary_command(spec.binary, spec.sha256), upload=spec.source,
                              upload_sha256=spec.sha256))
    unit = systemd.unit_file(spec, hashes)
    unit_change = file_action(unit, state.path(unit.path))
    if unit_change:
        actions.append(unit_change)
    if actions:
        command = " && ".join(shlex.join(argv) for argv in systemd.restart(spec.name))
        actions.append(Action("service", spec.name, "restart (binary or unit changed)", command, restarts=1))
    elif state.services.get(spec.name) != "active":
        actions.append(Action("service", spec.name, f"start (was {state.services.get(spec.name, 'unknown')})",
                              shlex.join(systemd.start(spec.name)), restarts=1))
    return actions


def plan_actions(plan: HostPlan, state: HostState, cli: ContainerCli) -> list[Action]:
    """Directories, then files, then containers and host services (their files exist before they start)."""
    actions: list[Action | None] = [directory_action(d, state.path(d.path)) for d in plan.directories]
    actions += [file_action(f, state.path(f.path)) for f in plan.files]
    hashes = watched_hashes(plan, state)
    if plan.containers:
        if state.container_error:
            raise OperationFailed(f"`{cli.name} ps` failed: {state.container_error}", step="list containers")
        actions += [container_action(c, state, cli, hashes) for c in plan.containers]
    for service in plan.services:
        actions += service_actions(service, state, hashes)
    return [a for a in actions if a is not None]


def probed_paths(plan: HostPlan) -> set[str]:
    paths = {d.path for d in plan.directories} | {f.path for f in plan.files}
    for container in plan.containers:
        paths.update(container.restart_on)
        if container.env_file:
            paths.add(container.env_file)
    for service in plan.services:
        paths.update((service.binary, systemd.unit_path(service), *service.restart_on))
    return paths


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _safe_to_remove(path: str) -> bool:
    """Refuse to rm -rf a top-level folder (/, /opt, /etc...) whatever a module renders."""
    return posixpath.normpath(path).count("/") >= 2


def removal_actions(plan: HostPlan, state: HostState, cli: ContainerCli, module: str, *,
                    purge_data: bool) -> list[Action]:
    """Cleanup: the module's containers (by name and by label), files, then folders deepest first.

    Data folders (DirSpec.data), and any folder that holds one, are kept unless purge_data. With it, a
    folder that is a mount point (a volume) is emptied and stays mounted; a folder holding one stays.
    """
    if state.container_error:  # never delete the configs of containers we could not see, let alone stop
        raise OperationFailed(f"`{cli.name} ps` failed: {state.container_error}", step="list containers")
    actions: list[Action] = []
    timeouts = {c.name: c.stop_timeout_s for c in plan.containers}
    names = set(timeouts) | {n for n, c in state.containers.items() if c.module == module}
    for name in sorted(names):
        if name in state.containers:
            command = stop_and_remove(cli, name, timeouts.get(name, STOP_TIMEOUT_S))
            actions.append(Action("remove", f"container {name}", "stop and remove", command))
    for service in plan.services:
        if state.services.get(service.name, "unknown") not in ("unknown", "") or state.path(
                systemd.unit_path(service)).present:
            stop = " && ".join(shlex.join(argv) for argv in systemd.remove(service.name))
            actions.append(Action("remove", f"service {service.name}", "disable and stop", f"{stop} || true"))
    files = [*plan.files, *(systemd.unit_file(s, {}) for s in plan.services)]
    for spec in files:
        if state.path(spec.path).present:
            actions.append(Action("remove", spec.path, "delete file", f"rm -f {_q(spec.path)}"))
    for service in plan.services:
        if state.path(service.binary).present:
            actions.append(Action("remove", service.binary, "delete binary", f"rm -f {_q(service.binary)}"))
    data_dirs = [d.path for d in plan.directories if d.data]
    for spec in sorted(plan.directories, key=lambda d: d.path.count("/"), reverse=True):
        holds_data = any(_is_under(data, spec.path) for data in data_dirs)
        if holds_data and not purge_data:
            continue
        if not state.path(spec.path).present:
            continue
        if not _safe_to_remove(spec.path):
            raise OperationFailed(f"refusing to remove top-level folder {spec.path}", step=f"remove {spec.path}")
        if spec.data and spec.path in state.mounts:  # a volume: emptied, never unmounted, detached or reformatted
            actions.append(Action("remove", spec.path, "empty the volume mounted here",
                                  f"find {_q(spec.path)} -xdev -mindepth 1 -delete"))
            continue
        if any(_is_under(mount, spec.path) for mount in state.mounts):
            continue  # is or holds another mount point: kept, like the mount
        summary = "delete data folder" if holds_data else "delete folder"
        actions.append(Action("remove", spec.path, summary, f"rm -rf -- {_q(spec.path)}"))
    return actions
