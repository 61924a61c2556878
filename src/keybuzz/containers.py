"""ContainerSpec -> docker/podman argv, as data (built here, run elsewhere; Kamal's pattern).

Secrets never appear in an argv: they reach containers through --env-file (0600) or files
mounted read-only. The spec hash is stored as a label so `ensure` can tell if a running
container still matches what was rendered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

SPEC_HASH_LABEL = "io.keybuzz.spec-hash"
MODULE_LABEL = "io.keybuzz.module"
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
    # Files on the host whose content, when changed, requires recreating the container.
    restart_on: tuple[str, ...] = field(default=())

    def spec_hash(self, file_hashes: dict[str, str]) -> str:
        """Hash of everything that defines the container, including watched file contents."""
        payload = asdict(self)
        payload["watched"] = {path: file_hashes.get(path, "") for path in sorted(
            {*self.restart_on, *([self.env_file] if self.env_file else [])})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def run_argv(self, cli: str, spec_hash: str) -> list[str]:
        argv = [cli, "run", "-d", "--name", self.name, "--restart", self.restart]
        if self.network_host:
            argv += ["--network", "host"]
        if self.user:
            argv += ["--user", self.user]
        if self.env_file:
            argv += ["--env-file", self.env_file]
        for mount in self.mounts:
            argv += ["-v", mount.flag()]
        for kind, value in self.ulimits:
            argv += ["--ulimit", f"{kind}={value}"]
        for key, value in (*self.labels, (MODULE_LABEL, self.module), (SPEC_HASH_LABEL, spec_hash)):
            argv += ["--label", f"{key}={value}"]
        if self.entrypoint is not None:
            argv += ["--entrypoint", self.entrypoint]
        argv.append(self.image)
        argv += list(self.command)
        return argv
