"""Change detection: a host's plan against its probed state -> the few actions that differ. Pure.

Each action carries its shell command; file content travels on stdin (never in argv), so secret
files never show up in `ps`, logs or exceptions. Containers are recreated only when the spec hash
label differs (image, args, env-file and restart_on file hashes), started when not running, and
otherwise left alone.
"""

from __future__ import annotations

import hashlib
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


# The checks shared by both scripts below: the folder that holds `target` is a real folder (never a
# link), and who may write in it. Root writes only in folders nobody else can change (root's, not
# writable by group or others unless sticky); in a folder another user owns (a container's data
# folder), the write runs as that user: a link planted there can then only reach what that user
# could write anyway, never a root-owned file.
_FOLDER_CHECK = r"""
folder_of() {
    info=$(stat -c '%u %g %a %F' -- "$1") || { echo "keybuzz: cannot stat $1" >&2; exit 1; }
    folder_uid=${info%% *}; info=${info#* }; folder_gid=${info%% *}; info=${info#* }
    folder_mode=${info%% *}; folder_kind=${info#* }
    if [ "$folder_kind" != directory ]; then
        echo "keybuzz: $1 is a $folder_kind, not a folder: nothing is written through it" >&2; exit 1
    fi
    if [ "$folder_uid" = 0 ]; then
        perm=$((0$folder_mode))
        if [ $((perm & 022)) -ne 0 ] && [ $((perm & 01000)) -eq 0 ]; then
            echo "keybuzz: $1 is root's but writable by others (mode $folder_mode): refusing to write in it" >&2
            exit 1
        fi
    fi
}
"""

# Atomic write from stdin: a fresh temp file (mktemp: O_EXCL, a random name) in the target's folder,
# checked against the expected hash (a cut SSH channel ends `cat` with a truncated file and status 0),
# owned and moded while nobody else can touch it, then renamed over the target (rename never follows
# a link at the target). Arguments: target, mode, owner (chown syntax, or `-`: the folder's owner),
# sha256. Values travel as argv.
_WRITE_SCRIPT = _FOLDER_CHECK + r"""
set -eu
target=$1 mode=$2 owner=$3 sum=$4
folder=$(dirname -- "$target")
mkdir -p -- "$folder"
folder_of "$folder"
if [ "$owner" = - ]; then owner=$folder_uid:$folder_gid; fi
user=${owner%%:*}
group=${owner#"$user"}; group=${group#:}
case $user in ''|*[!0-9]*) uid=$(id -u -- "$user") ;; *) uid=$user ;; esac
write='set -eu
umask 077
tmp=$(mktemp -p "$1" .keybuzz-write.XXXXXXXX)
trap '"'"'rm -f -- "$tmp"'"'"' EXIT
cat > "$tmp"
if ! printf "%s  %s\n" "$4" "$tmp" | sha256sum -c --status; then
    echo "keybuzz: $2: the content arrived incomplete (hash mismatch); the old file is kept" >&2; exit 1
fi
if [ -n "$5" ]; then chown -- "$5" "$tmp"; fi
chmod -- "$3" "$tmp"
mv -fT -- "$tmp" "$2"
trap - EXIT'
if [ "$folder_uid" = 0 ]; then
    exec sh -c "$write" keybuzz-write "$folder" "$target" "$mode" "$sum" "$owner"
fi
if [ "$uid" != "$folder_uid" ]; then
    echo "keybuzz: $target: its folder belongs to uid $folder_uid, so must the file (wanted $owner)" >&2; exit 1
fi
exec setpriv --reuid="$folder_uid" --regid="${group:-$folder_gid}" --clear-groups -- \
    sh -c "$write" keybuzz-write "$folder" "$target" "$mode" "$sum" ""
"""

# A managed folder: created (with its parents) and given its owner and mode, only inside a folder nobody
# else can change (every folder keybuzz manages sits in root's folders: a unit test checks the renders).
# Arguments: path, mode, owner.
_DIRECTORY_SCRIPT = _FOLDER_CHECK + r"""
set -eu
path=$1 mode=$2 owner=$3
parent=$(dirname -- "$path")
mkdir -p -- "$parent"
folder_of "$parent"
if [ "$folder_uid" != 0 ]; then
    echo "keybuzz: $path: its parent belongs to uid $folder_uid; keybuzz manages folders in root's folders only" >&2
    exit 1
fi
if [ ! -e "$path" ] && [ ! -L "$path" ]; then mkdir -m 0700 -- "$path"; fi
folder_of "$path"
chown -h -- "$owner" "$path"
chmod -- "$mode" "$path"
"""


def directory_command(path: str, mode: int, owner: str) -> str:
    """`sh -c SCRIPT NAME ARGS...`: the script is constant, every value an argument quoted once (shlex.join)."""
    return shlex.join(["sh", "-c", _DIRECTORY_SCRIPT, "keybuzz-directory", path, f"{mode:04o}", owner])


def write_argv(path: str, mode: int, owner: str, sha256: str) -> list[str]:
    """The write of a file whose content comes on stdin, as an argv (see _WRITE_SCRIPT)."""
    return ["sh", "-c", _WRITE_SCRIPT, "keybuzz-write", path, f"{mode:04o}", owner, sha256]


def empty_file_argv(path: str) -> list[str]:
    """A marker file (a service's own flag, in its data folder), created as the folder's owner; stdin: ""."""
    return write_argv(path, 0o644, "-", hashlib.sha256(b"").hexdigest())


def directory_action(spec: DirSpec, current: PathState) -> Action | None:
    command = directory_command(spec.path, spec.mode, str(spec.owner))
    if not current.present:
        return Action("directory", spec.path, "create", command)
    if current.kind != "directory":
        raise OperationFailed(f"{spec.path} exists and is not a directory ({current.kind})",
                              step=f"directory {spec.path}")
    changes = _mode_owner(current, spec.mode, spec.owner)
    return Action("directory", spec.path, ", ".join(changes), command) if changes else None


def write_command(path: str, mode: int, owner: str, sha256: str) -> str:
    """The content comes on stdin (never in argv); see _WRITE_SCRIPT for why no write follows a link."""
    return shlex.join(write_argv(path, mode, owner, sha256))


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
    # Rewritten rather than chown/chmod in place: the file's folder may be a container user's, where the
    # path can be swapped for a link between the probe and the fix; the write path never follows one.
    return Action("metadata", spec.path, ", ".join(changes), write_command(spec.path, spec.mode, str(spec.owner),
                                                                          spec.sha256), stdin=spec.text, file=spec)


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


def _safe_to_remove(path: str, removable: tuple[str, ...]) -> bool:
    """An allow-list: only a folder at or under one of the module's own folders, each path written in its
    normal form (absolute, at least two levels, no `.`, `..`, `//` or trailing `/`): a rendered or site
    path that says otherwise (`//<module>` of a data_root `/`, `/opt/../etc`, `/opt`) never reaches `rm -rf`."""

    def normal(p: str) -> bool:
        return p.startswith("/") and not p.startswith("//") and posixpath.normpath(p) == p and p.count("/") >= 2

    return normal(path) and any(normal(root) and _is_under(path, root) for root in removable)


def removal_actions(plan: HostPlan, state: HostState, cli: ContainerCli, module: str, *,
                    purge_data: bool, module_dirs: tuple[str, ...]) -> list[Action]:
    """Cleanup: the module's containers (by name and by label), files, then folders deepest first.

    Data folders (DirSpec.data), and any folder that holds one, are kept unless purge_data. With it, a
    folder that is a mount point (a volume) is emptied and stays mounted; a folder holding one stays.
    A folder is removed only at or under the module's own folders: `module_dirs` (its folders under the
    site's data_root and config_root) and /etc/keybuzz/<module>; any other stops the cleanup before it acts.
    """
    removable = tuple(dict.fromkeys((*module_dirs, f"/etc/keybuzz/{module}")))
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
        if not _safe_to_remove(spec.path, removable):
            raise OperationFailed(f"refusing to remove {spec.path!r}: keybuzz removes only folders at or under "
                                  f"the module's own ({', '.join(removable)}), written without `.`, `..` or `//`; "
                                  "check keybuzz.yaml paths.data_root and paths.config_root",
                                  step=f"remove {spec.path}")
        if spec.data and spec.path in state.mounts:  # a volume: emptied, never unmounted, detached or reformatted
            actions.append(Action("remove", spec.path, "empty the volume mounted here",
                                  f"find {_q(spec.path)} -xdev -mindepth 1 -delete"))
            continue
        if any(_is_under(mount, spec.path) for mount in state.mounts):
            continue  # is or holds another mount point: kept, like the mount
        summary = "delete data folder" if holds_data else "delete folder"
        actions.append(Action("remove", spec.path, summary, f"rm -rf -- {_q(spec.path)}"))
    return actions
