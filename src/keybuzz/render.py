"""What a module puts on a host, as data: directories, files, containers and host services. Pure.

Render is the whole truth: every path that reaches a server is declared here with its mode and
owner, also when part of it is only known at deploy time. Two such values exist:
- `ImageUser`: an owner that is a user of an image (a database user is uid 100 in a Debian
  rootfs, 999 in an official image); the engine reads its uid:gid from the image before converging.
- `FilledAtDeploy`: a file whose content the module reads from the running service (a SCRAM
  verifier from the database); the module fills it with `filled()` before converging it.
`keybuzz render`, lint and the secret scan therefore see every file, including those two kinds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from keybuzz.containers import ContainerSpec


@dataclass(frozen=True)
class ImageUser:
    """The uid:gid of `user` inside `image`, read by the engine at deploy time."""

    image: str
    user: str

    def __str__(self) -> str:
        return f"{self.user} of image {self.image}"


@dataclass(frozen=True)
class FilledAtDeploy:
    """Content only the running service can give; `key` names it for `filled()`."""

    key: str
    what: str  # for render output and dry-run: what will be there


Owner = str | ImageUser


@dataclass(frozen=True)
class FileSpec:
    """A file on a host. `secret` files hold credential values: 0600 and never shown in diffs."""

    path: str
    content: str | FilledAtDeploy = field(repr=False)  # may hold secrets: never in a traceback or a test failure
    mode: int = 0o644
    owner: Owner = "root"  # "user", "uid" or "uid:gid" as chown takes it, or an ImageUser
    secret: bool = False
    create_only: bool = False  # the service owns it after first start (e.g. sentinel.conf)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"file path must be absolute: {self.path}")
        if self.secret and self.mode & 0o077:
            object.__setattr__(self, "mode", 0o600)

    @property
    def text(self) -> str:
        """The content; a FilledAtDeploy left unfilled is a module bug, said plainly."""
        if isinstance(self.content, FilledAtDeploy):
            raise ValueError(f"{self.path}: its content ({self.content.what}) is filled at deploy and was not "
                             f"provided (filled(plans, {{{self.content.key!r}: ...}}))")
        return self.content

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class DirSpec:
    path: str
    mode: int = 0o755
    owner: Owner = "root"
    data: bool = False  # holds service data: removed only by cleanup --purge-data


@dataclass(frozen=True)
class HostService:
    """A pinned binary run by the server's systemd: for what does not run in a container (K3s, agents).

    The engine installs `source` (a file on the control machine, refused unless its sha256 is the
    pinned one) at `binary`, writes the unit, and restarts the service when the binary, the unit or
    a `restart_on` file changed (keybuzz.services)."""

    name: str  # the systemd unit, without .service
    module: str
    binary: str  # absolute path on the server
    source: str  # path on the control machine
    sha256: str  # the pinned checksum of the binary
    unit: str  # the [Unit]/[Service]/[Install] text
    restart_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.binary.startswith("/") and len(self.sha256) == 64):
            raise ValueError(f"host service {self.name}: binary must be absolute and sha256 a full hex digest")


@dataclass
class HostPlan:
    """Everything one module wants on one host."""

    hostname: str
    directories: list[DirSpec] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)
    containers: list[ContainerSpec] = field(default_factory=list)
    services: list[HostService] = field(default_factory=list)

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

    def with_containers(self, *names: str) -> HostPlan:
        """The same directories and files with only these containers: a deploy phase that starts some
        containers before the others (the rest are converged by a later phase)."""
        return HostPlan(self.hostname, list(self.directories), list(self.files),
                        [c for c in self.containers if c.name in names], list(self.services))

    def without_containers(self, *names: str) -> HostPlan:
        return self.with_containers(*(c.name for c in self.containers if c.name not in names))


Plans = dict[str, HostPlan]


class PlanConflict(ValueError):
    """Two plans want different things at the same path or container name on one host."""


def _add_unique(target: list, items: list, key: str, host: str) -> None:
    known = {getattr(item, key): item for item in target}
    for item in items:
        name = getattr(item, key)
        if name not in known:
            target.append(item)
            known[name] = item
        elif known[name] != item:
            raise PlanConflict(f"{host}: two plans declare {name} differently")


def merge_plans(*plan_sets: Plans) -> Plans:
    """Combine per-host plans (two roles of one module on a server, or every module of a site).

    One policy everywhere: an identical directory, file or container declared twice is kept once;
    the same path or container name declared differently is a PlanConflict naming the host."""
    merged: Plans = {}
    for plans in plan_sets:
        for host, plan in plans.items():
            target = merged.setdefault(host, HostPlan(host))
            _add_unique(target.directories, plan.directories, "path", host)
            _add_unique(target.files, plan.files, "path", host)
            _add_unique(target.containers, plan.containers, "name", host)
            _add_unique(target.services, plan.services, "name", host)
    return merged


def filled(plans: Plans, values: Mapping[str, str]) -> Plans:
    """The plans with every FilledAtDeploy content whose key is in `values` replaced by its value."""
    def fill(spec: FileSpec) -> FileSpec:
        if isinstance(spec.content, FilledAtDeploy) and spec.content.key in values:
            return replace(spec, content=values[spec.content.key])
        return spec

    return {host: HostPlan(host, list(plan.directories), [fill(f) for f in plan.files], list(plan.containers),
                           list(plan.services)) for host, plan in plans.items()}


def image_users(plans: Plans) -> set[tuple[str, ImageUser]]:
    """(host, ImageUser) pairs whose uid:gid the engine must read before converging."""
    found: set[tuple[str, ImageUser]] = set()
    for host, plan in plans.items():
        for spec in [*plan.directories, *plan.files]:
            if isinstance(spec.owner, ImageUser):
                found.add((host, spec.owner))
    return found


def with_owners(plan: HostPlan, owners: Mapping[ImageUser, str]) -> HostPlan:
    """The plan with every ImageUser owner replaced by its uid:gid (or its text, when unknown)."""
    def fix(spec):  # type: ignore[no-untyped-def]
        if isinstance(spec.owner, ImageUser):
            return replace(spec, owner=owners.get(spec.owner, str(spec.owner)))
        return spec

    return HostPlan(plan.hostname, [fix(d) for d in plan.directories], [fix(f) for f in plan.files],
                    list(plan.containers), list(plan.services))
