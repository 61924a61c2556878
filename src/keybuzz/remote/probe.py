"""One read-only command per host that reports every managed path and container (few round-trips).

A no-op re-run is dominated by SSH round-trips, so the engine asks each host once for the stat
and sha256 of every path it manages plus the state and labels of every container, then acts
only on differences. Building the script and parsing its output are pure (unit-tested).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from keybuzz import services as systemd
from keybuzz.containers import MODULE_LABEL, SPEC_HASH_LABEL, ContainerCli

_STAT_FORMAT = r"S\t%n\t%F\t%a\t%U:%G\t%u:%g\n"


@dataclass(frozen=True)
class PathState:
    """What is at a path now. kind: "file", "directory", "other" or "" (absent)."""

    kind: str = ""
    mode: int = 0
    owner_names: str = ""
    owner_ids: str = ""
    sha256: str = ""

    @property
    def present(self) -> bool:
        return bool(self.kind)


@dataclass(frozen=True)
class ContainerState:
    name: str
    state: str  # running, exited, created, paused, ...
    spec_hash: str = ""
    module: str = ""

    @property
    def running(self) -> bool:
        return self.state.lower() in ("running", "up")


@dataclass
class HostState:
    paths: dict[str, PathState] = field(default_factory=dict)
    containers: dict[str, ContainerState] = field(default_factory=dict)
    container_error: str = ""
    services: dict[str, str] = field(default_factory=dict)  # unit -> `systemctl is-active` answer
    mounts: set[str] = field(default_factory=set)  # mount points (asked for by cleanup only)

    def path(self, path: str) -> PathState:
        return self.paths.get(path, PathState())


# Files the container engine rewrites on every container state change (create, start, exit, stop,
# remove). While their inode/mtime/size are unchanged, the last `ps -a` output is still true, so
# a no-op re-run does not start the CLI (a Go binary: ~30 ms of CPU per call, most of a no-op).
CONTAINER_STATE_FILES: dict[str, tuple[str, ...]] = {
    "podman": ("/var/lib/containers/storage/libpod/bolt_state.db", "/var/lib/containers/storage/db.sql",
               "/var/lib/containers/storage/db.sql-wal"),
    "docker": ("/var/lib/docker/containers/*/config.v2.json",),
}
# On tmpfs: gone after a reboot, so a reboot always asks the CLI again.
PS_CACHE_DIR = "/run/keybuzz"
_PS_FORMAT = "{{.Names}}\t{{.State}}\t{{.Labels}}"
_CACHE_VERSION = "v1"


def _container_listing(cli: str, state_files: tuple[str, ...], cache_dir: str) -> list[str]:
    """`cli ps -a`, or its cached output when the engine's state files have not changed since.

    The fingerprint is taken before `ps` runs: a change during `ps` invalidates the cache next time.
    Without any state file (custom graphroot...) the CLI is asked every time.
    """
    q = shlex.quote
    files = " ".join(f if "*" in f else q(f) for f in state_files)  # docker's glob must expand
    cache = q(f"{cache_dir}/{cli.rsplit('/', 1)[-1]}-ps.cache")
    listing = f"{shlex.join(ContainerCli(cli).list_all(_PS_FORMAT))} 2>/dev/null"
    return [
        "echo '#C'",
        f"fp=$(stat --printf '%i:%.9Y:%s ' -- {files} 2>/dev/null)" if files else "fp=",
        f"fp=\"{_CACHE_VERSION} $fp\"; old=",
        f"[ -f {cache} ] && IFS= read -r old < {cache}",
        f'if [ "$fp" != "{_CACHE_VERSION} " ] && [ "$old" = "$fp" ]; then tail -n +2 {cache}; '
        f"elif out=$({listing}); then printf '%s\\n' \"$out\"; "
        f'if [ "$fp" != "{_CACHE_VERSION} " ]; then mkdir -p -m 0700 {q(cache_dir)} && '
        f"printf '%s\\n%s\\n' \"$fp\" \"$out\" > {cache}.tmp && mv -f {cache}.tmp {cache}; fi; "
        f"else echo '#X'; {shlex.join(ContainerCli(cli).list_all(_PS_FORMAT))} 2>&1 | tail -n 3; fi",
    ]


def probe_script(paths: Iterable[str], container_cli: str | None, *,
                 state_files: tuple[str, ...] | None = None, cache_dir: str = PS_CACHE_DIR,
                 services: Iterable[str] = (), mounts: bool = False) -> str:
    """Shell script: stat + sha256 of `paths` (two processes), then the containers (`ps -a` or its cache).

    Sections start with a `#S`, `#H` or `#C` line; few pipes or subshells: every fork counts when
    fifty hosts answer on one machine.
    """
    quoted = " ".join(shlex.quote(p) for p in sorted(set(paths)))
    lines = ["LC_ALL=C; export LC_ALL"]
    if quoted:
        lines.append(f"echo '#S'; stat --printf '{_STAT_FORMAT}' -- {quoted} 2>/dev/null")
        lines.append(f"echo '#H'; sha256sum -- {quoted} 2>/dev/null")
    if mounts:  # the 5th field of mountinfo, octal-escaped like fstab (\040 for a space)
        lines.append("echo '#M'; awk '{print $5}' /proc/self/mountinfo")
    for name in sorted(set(services)):
        active = shlex.join(systemd.is_active(name))
        lines.append(f"echo '#U'; printf '%s\\t%s\\n' {shlex.quote(name)} \"$({active} 2>/dev/null || true)\"")
    if container_cli:
        if state_files is None:
            state_files = CONTAINER_STATE_FILES.get(container_cli.rsplit("/", 1)[-1], ())
        lines += _container_listing(container_cli, state_files, cache_dir)
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


_KINDS = {"regular file": "file", "regular empty file": "file", "directory": "directory"}


def _label(labels: str, key: str) -> str:
    """A label value from docker (`k=v,k2=v2`) or podman (`map[k:v k2:v2]`) ps output."""
    match = re.search(re.escape(key) + r"[=:]([^,\s\]]*)", labels)
    return match.group(1) if match else ""


def parse_probe(output: str) -> HostState:
    state = HostState()
    hashes: dict[str, str] = {}
    section = ""
    container_lines: list[str] = []
    for line in output.splitlines():
        if line in ("#S", "#H", "#C", "#X", "#U", "#M"):
            section = line[1]
            if section == "X":
                state.container_error = "container listing failed:"
        elif section == "S":
            parts = line.split("\t")
            if len(parts) == 6:
                _, path, kind, mode, names, ids = parts
                state.paths[path] = PathState(kind=_KINDS.get(kind, "other"), mode=int(mode, 8),
                                              owner_names=names, owner_ids=ids)
        elif section == "H":
            digest, _, path = line.partition("  ")
            hashes[path] = digest
        elif section == "C" and line.strip():
            container_lines.append(line)
        elif section == "X":
            state.container_error = f"{state.container_error} {line.strip()}".strip()
        elif section == "M" and line.strip():
            state.mounts.add(line.strip().replace("\\040", " "))
        elif section == "U" and "\t" in line:
            name, _, answer = line.partition("\t")
            state.services[name] = answer.strip() or "unknown"
    if not state.container_error:
        for line in container_lines:
            parts = line.split("\t", 2)
            if len(parts) < 2:
                continue
            labels = parts[2] if len(parts) > 2 else ""
            for name in parts[0].split(","):
                state.containers[name] = ContainerState(name=name, state=parts[1].strip().split(" ")[0],
                                                        spec_hash=_label(labels, SPEC_HASH_LABEL),
                                                        module=_label(labels, MODULE_LABEL))
    for path, digest in hashes.items():
        if path in state.paths:
            current = state.paths[path]
            state.paths[path] = PathState(current.kind, current.mode, current.owner_names, current.owner_ids, digest)
    return state


def owner_matches(wanted: str, current_names: str, current_ids: str) -> bool:
    """chown syntax ("user", "uid", "user:group", "uid:gid") against stat's names and ids."""
    want_user, _, want_group = wanted.partition(":")
    name_user, _, name_group = current_names.partition(":")
    id_user, _, id_group = current_ids.partition(":")
    if want_user not in (name_user, id_user):
        return False
    return not want_group or want_group in (name_group, id_group)
