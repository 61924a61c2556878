"""What a module puts on a host, as data: files, directories and containers. Pure, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from keybuzz.containers import ContainerSpec


@dataclass(frozen=True)
class FileSpec:
    """A file on a host. `secret` files hold credential values: 0600 and never shown in diffs."""

    path: str
    content: str = field(repr=False)  # may hold secrets: never in a traceback or a test failure
    mode: int = 0o644
    owner: str = "root"  # "user", "uid" or "uid:gid" as chown takes it
    secret: bool = False
    create_only: bool = False  # the service owns it after first start (e.g. sentinel.conf)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"file path must be absolute: {self.path}")
        if self.secret and self.mode & 0o077:
            object.__setattr__(self, "mode", 0o600)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


@dataclass(frozen=True)
class DirSpec:
    path: str
    mode: int = 0o755
    owner: str = "root"
    data: bool = False  # holds service data: removed only by cleanup --purge-data


@dataclass
class HostPlan:
    """Everything one module wants on one host."""

    hostname: str
    directories: list[DirSpec] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)
    containers: list[ContainerSpec] = field(default_factory=list)

    def file(self, path: str) -> FileSpec:
        for spec in self.files:
            if spec.path == path:
                return spec
        raise KeyError(path)

    def container(self, name: str) -> ContainerSpec:
        for spec in self.containers:
            if spec.name == name:
                return spec
        raise KeyError(name)


Plans = dict[str, HostPlan]


def merge_plans(*plan_sets: Plans) -> Plans:
    """Combine per-host plans of several modules (render of the whole site)."""
    merged: Plans = {}
    for plans in plan_sets:
        for host, plan in plans.items():
            target = merged.setdefault(host, HostPlan(host))
            target.directories.extend(plan.directories)
            target.files.extend(plan.files)
            target.containers.extend(plan.containers)
    return merged
