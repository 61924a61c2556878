"""Container specs and every docker/podman command line, as data (built here, run elsewhere; Kamal's pattern).

Secrets never appear in an argv: they reach containers through --env-file (0600) or files
mounted read-only. The spec hash is stored as a label so converge can tell if a running
container still matches what was rendered. This is the only place that knows the CLI's flags.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

SPEC_HASH_LABEL = "io.keybuzz.spec-hash"
MODULE_LABEL = "io.keybuzz.module"
STOP_TIMEOUT_S = 30
# No --ulimit flags by default: the container CLI's defaults apply (dockerd's, or default_ulimits
# in containers.conf). Explicit values above the hard limit the runtime inherits fail at start
# ("crun: setrlimit RLIMIT_NOFILE: Operation not permitted"; 65536 did on the lab machine).
DEFAULT_ULIMITS: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False

    def flag(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class HealthCheck:
    """The container's own health command (docker/podman `--health-*`)."""

    command: tuple[str, ...]
    interval_s: int = 5
    timeout_s: int = 3
    retries: int = 3


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    module: str
    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    env_file: str | None = None
    mounts: tuple[Mount, ...] = ()
    network_host: bool = True
    restart: str = "unless-stopped"
    user: str | None = None
    ulimits: tuple[tuple[str, str], ...] = DEFAULT_ULIMITS
    labels: tuple[tuple[str, str], ...] = ()
    cap_add: tuple[str, ...] = ()
    privileged: bool = False
    tmpfs: tuple[str, ...] = ()  # paths mounted as fresh tmpfs inside the container
    stop_timeout_s: int = STOP_TIMEOUT_S  # graceful stop before SIGKILL (databases flush)
    health: HealthCheck | None = None
    hostname: str | None = None  # the container's own host name (services that name themselves by it)
    # (name, ip) pairs in the container's /etc/hosts: peers found by name whatever the host resolves.
    extra_hosts: tuple[tuple[str, str], ...] = ()
    # Files on the host whose content, when changed, requires recreating the container.
    restart_on: tuple[str, ...] = field(default=())

    def spec_hash(self, file_hashes: dict[str, str]) -> str:
        """Hash of everything that defines the container, including watched file contents.

        Fields added after the first release count only when set: upgrading keybuzz must not
        recreate every running container of a site."""
        payload = {key: value for key, value in asdict(self).items()
                   if key in _HASHED_ALWAYS or value != _DEFAULTS[key]}
        payload["watched"] = {path: file_hashes.get(path, "") for path in sorted(
            {*self.restart_on, *([self.env_file] if self.env_file else [])})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


_HASHED_ALWAYS = frozenset({"name", "image", "module", "command", "entrypoint", "env_file", "mounts", "network_host",
                            "restart", "user", "ulimits", "labels", "restart_on"})
_DEFAULTS = {f.name: f.default for f in fields(ContainerSpec)}


@dataclass(frozen=True)
class ContainerCli:
    """argv builders for one container CLI (docker or podman; both take the same flags here)."""

    name: str  # "docker", "podman" or a path to one

    def run(self, spec: ContainerSpec, spec_hash: str) -> list[str]:
        argv = [self.name, "run", "-d", "--name", spec.name, "--restart", spec.restart, *self._flags(spec)]
        argv += ["--stop-timeout", str(spec.stop_timeout_s)]
        if spec.health:
            argv += ["--health-cmd", shlex.join(spec.health.command),
                     "--health-interval", f"{spec.health.interval_s}s", "--health-timeout", f"{spec.health.timeout_s}s",
                     "--health-retries", str(spec.health.retries)]
        for key, value in (*spec.labels, (MODULE_LABEL, spec.module), (SPEC_HASH_LABEL, spec_hash)):
            argv += ["--label", f"{key}={value}"]
        if spec.entrypoint is not None:
            argv += ["--entrypoint", spec.entrypoint]
        argv.append(spec.image)
        argv += list(spec.command)
        return argv

    def once(self, spec: ContainerSpec, command: Sequence[str]) -> list[str]:
        """A one-off run of the spec's image with its user, mounts and network, removed after: a
        tool that must see the service's data while the service is stopped (e.g. a recovery scan)."""
        return [self.name, "run", "--rm", *self._flags(spec), "--entrypoint", command[0], spec.image, *command[1:]]

    def _flags(self, spec: ContainerSpec) -> list[str]:
        argv: list[str] = []
        if spec.network_host:
            argv += ["--network", "host"]
        if spec.user:
            argv += ["--user", spec.user]
        if spec.hostname:
            argv += ["--hostname", spec.hostname]
        for name, ip in spec.extra_hosts:
            argv += ["--add-host", f"{name}:{ip}"]
        if spec.env_file:
            argv += ["--env-file", spec.env_file]
        for mount in spec.mounts:
            argv += ["-v", mount.flag()]
        for path in spec.tmpfs:
            argv += ["--tmpfs", path]
        for kind, value in spec.ulimits:
            argv += ["--ulimit", f"{kind}={value}"]
        for capability in spec.cap_add:
            argv += ["--cap-add", capability]
        if spec.privileged:
            argv.append("--privileged")
        return argv

    def exec(self, container: str, argv: Sequence[str], *, user: str | None = None,
             stdin: bool = False) -> list[str]:
        """A command in a running container; `stdin` keeps it open (statements, secrets go there)."""
        return [self.name, "exec", *(["-i"] if stdin else []), *(["--user", user] if user else []), container,
                *argv]

    def label(self, container: str, label: str) -> list[str]:
        return [self.name, "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', container]

    def image_present(self, image: str) -> list[str]:
        return [self.name, "image", "inspect", image]

    def image_id(self, image: str) -> list[str]:
        """Print the image's content id (what a cache of facts about the image is keyed by)."""
        return [self.name, "image", "inspect", "--format", "{{.Id}}", image]

    def pull(self, image: str) -> list[str]:
        return [self.name, "pull", "-q", image]

    def user_ids(self, image: str, user: str) -> list[str]:
        """Print the uid and gid of `user` in `image`: a throwaway container without network."""
        return [self.name, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c",
                'id -u -- "$1"; id -g -- "$1"', "keybuzz-ids", user]

    def stop(self, *names: str, timeout_s: int = STOP_TIMEOUT_S) -> list[str]:
        return [self.name, "stop", "-t", str(timeout_s), *names]

    def remove(self, name: str) -> list[str]:
        return [self.name, "rm", "-f", name]

    def start(self, *names: str) -> list[str]:
        return [self.name, "start", *names]

    def kill(self, *names: str) -> list[str]:
        return [self.name, "kill", *names]

    def list_all(self, template: str) -> list[str]:
        """Every container, running or not, one line each in the Go template."""
        return [self.name, "ps", "-a", "--format", template]

    def list_module(self, module: str) -> list[str]:
        return [self.name, "ps", "-a", "--filter", f"label={MODULE_LABEL}={module}", "--format", "{{.Names}}"]
