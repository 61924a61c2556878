"""Lab images built from Debian packages (no registry here): one shared base, one image per family.

The base is `debootstrap --variant=minbase` imported into podman; each family is a `podman build`
on top of it, so the ~70 MB base layer is stored once. Tags carry a hash of the recipe: a changed
package list gives a new tag and a rebuild, an unchanged one is a cache hit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keybuzz.lab.errors import run

DEFAULT_IMAGE_ROOT = Path(os.environ.get("KEYBUZZ_LAB_IMAGES", "/srv/keybuzz-lab/images"))
SUITE = "bookworm"
REPOSITORY = "localhost/keybuzz-lab"
PATRONI_VERSION = "4.1.5"
FALLBACK_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Recipe:
    """What goes into one image; every field is part of the tag hash."""

    key: str  # the versions.yaml key
    label: str  # human part of the tag
    packages: tuple[str, ...]
    wheels: tuple[str, ...] = ()
    before: tuple[str, ...] = ()  # shell run before apt-get install
    after: tuple[str, ...] = ()  # shell run after it (the wheelhouse is at /wheelhouse)


BASE = Recipe("base", SUITE, ("procps",))
FAMILIES: tuple[Recipe, ...] = (
    Recipe("patroni", f"{PATRONI_VERSION}-pg15",
           ("postgresql-15", "python3-venv", "libpq5", "ca-certificates", "etcd-server", "etcd-client"),
           wheels=(f"patroni[raft,etcd3,psycopg3]=={PATRONI_VERSION}", "psycopg[binary]==3.3.9"),
           before=("mkdir -p /etc/postgresql-common",
                   "echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf"),
           after=("/usr/bin/python3 -m venv /opt/patroni",
                  "/opt/patroni/bin/pip install -q --no-index --find-links /wheelhouse "
                  f"'patroni[raft,etcd3,psycopg3]=={PATRONI_VERSION}' 'psycopg[binary]'",
                  "rm -rf /root/.cache")),
    Recipe("pgbouncer", f"1.18-{SUITE}", ("pgbouncer",)),
    Recipe("redis", f"7.0-{SUITE}", ("redis-server", "redis-sentinel")),
    Recipe("haproxy", f"2.6-{SUITE}", ("haproxy",)),
)
RECIPES: dict[str, Recipe] = {r.key: r for r in (BASE, *FAMILIES)}


def recipe_hash(recipe: Recipe, base_ref: str = "") -> str:
    blob = json.dumps({"recipe": asdict(recipe), "base": base_ref, "suite": SUITE}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def image_refs() -> dict[str, str]:
    """versions.yaml key -> pinned local reference; pure, so the site can be written without building."""
    base_ref = f"{REPOSITORY}/base:{BASE.label}-{recipe_hash(BASE)}"
    refs = {"base": base_ref}
    for recipe in FAMILIES:
        refs[recipe.key] = f"{REPOSITORY}/{recipe.key}:{recipe.label}-{recipe_hash(recipe, base_ref)}"
    return refs


def containerfile(recipe: Recipe, base_ref: str) -> str:
    steps = [*recipe.before, "export DEBIAN_FRONTEND=noninteractive",
             "apt-get update -q", "apt-get install -y -q --no-install-recommends " + " ".join(recipe.packages),
             "apt-get clean", "rm -rf /var/lib/apt/lists/*", *recipe.after]
    return f"FROM {base_ref}\nRUN set -e; " + "; ".join(steps) + "\n"


_SOURCE_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)")


def debian_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = SUITE) -> str:
    """The machine's own Debian mirror (CI and this machine differ); deb.debian.org otherwise."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.MULTILINE))
                uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
                if suite in suites and "deb" in fields.get("Types", "").split() and uris:
                    return uris[0]
        else:
            for line in text.splitlines():
                match = _SOURCE_LINE.match(line.strip())
                if match and match[2] == suite:
                    return match[1]
    return FALLBACK_MIRROR


@dataclass
class BuildReport:
    key: str
    ref: str
    seconds: float
    size_bytes: int
    cached: bool


@dataclass
class ImageStore:
    """The shared store every lab host lists in `additionalimagestores`."""

    root: Path = DEFAULT_IMAGE_ROOT
    log: Callable[[str], None] = field(default=lambda message: None)

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def runroot(self) -> Path:
        return Path("/run/keybuzz-lab-images") / hashlib.sha256(str(self.root).encode()).hexdigest()[:8]

    def podman(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.store), "--runroot", str(self.runroot), "--storage-driver", "overlay",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--tmpdir", str(self.runroot / "libpod"), *args]

    def inventory(self) -> dict[str, int]:
        """Every tagged image of the store -> its size in bytes (one podman call: `up` stays fast)."""
        if not self.store.exists():
            return {}
        listing = json.loads(run(self.podman("images", "--format", "json")).stdout or "[]")
        return {name: int(item.get("Size", 0)) for item in listing for name in item.get("Names") or []}

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Two labs building at once would corrupt nothing, but would build twice."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure(self, keys: list[str] | None = None) -> list[BuildReport]:
        """Build what is missing, base first; wheelhouses are fetched from PyPI while debootstrap runs."""
        refs = image_refs()
        order = ["base", *[k for k in (keys or list(refs)) if k != "base"]]
        reports: list[BuildReport] = []
        with self.locked(), ThreadPoolExecutor(max_workers=1) as pool:
            present = self.inventory()
            missing = [key for key in order if refs[key] not in present]
            wheels = {key: pool.submit(self.wheelhouse, RECIPES[key]) for key in missing if RECIPES[key].wheels}
            for key in order:
                started = time.monotonic()
                if key in missing:
                    self.log(f"building {refs[key]} ...")
                    if key == "base":
                        self._build_base(refs[key])
                    else:
                        if key in wheels:
                            wheels[key].result()
                        self._build_family(RECIPES[key], refs["base"], refs[key])
                size = present[refs[key]] if key not in missing else self.inventory().get(refs[key], 0)
                report = BuildReport(key, refs[key], time.monotonic() - started, size, key not in missing)
                reports.append(report)
                if not report.cached:
                    self.log(f"built {report.ref} in {report.seconds:.1f} s, {report.size_bytes / 1e6:.0f} MB")
        return reports

    def _build_base(self, ref: str) -> None:
        work = Path(tempfile.mkdtemp(prefix="base.", dir=self.root))
        try:
            rootfs = work / "rootfs"
            run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE.packages), SUITE, str(rootfs),
                 debian_mirror()], timeout=1200)
            policy = rootfs / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# keybuzz lab image: no daemon starts at package install\nexit 101\n")
            policy.chmod(0o755)
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / cache).glob("*.deb" if "archives" in cache else "*_Packages"):
                    item.unlink()
            run(["sh", "-c", f"tar --numeric-owner -C {rootfs} -c . | "
                 + " ".join(self.podman("import", "--change", "CMD=/bin/bash", "-", ref))], timeout=1200)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _build_family(self, recipe: Recipe, base_ref: str, ref: str) -> None:
        work = Path(tempfile.mkdtemp(prefix=f"{recipe.key}.", dir=self.root))
        try:
            (work / "Containerfile").write_text(containerfile(recipe, base_ref))
            volumes: list[str] = []
            if recipe.wheels:
                volumes = ["--volume", f"{self.wheelhouse(recipe)}:/wheelhouse:ro"]
            run(self.podman("build", "--isolation", "chroot", "--network", "host", "--layers=false", *volumes,
                            "-t", ref, "-f", str(work / "Containerfile"), str(work)), timeout=1800)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def wheelhouse(self, recipe: Recipe) -> Path:
        """Wheels built on the control machine (hosts have no network beyond the lab)."""
        digest = hashlib.sha256("\n".join(recipe.wheels).encode()).hexdigest()[:10]
        target = self.root / f"wheelhouse-{digest}"
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            run(["/usr/bin/python3", "-m", "pip", "wheel", "-q", "--wheel-dir", str(target), *recipe.wheels],
                timeout=1200)
            (target / ".complete").touch()
        return target
