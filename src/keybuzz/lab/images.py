"""Lab images built from Debian packages (no registry here): one shared base, one image per recipe.

The base is `debootstrap --variant=minbase` imported into podman; each module's LabRecipe is a
`podman build` on top of it, so the ~70 MB base layer is stored once. Tags carry a hash of the
recipe: a changed package list gives a new tag and a rebuild, an unchanged one is a cache hit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keybuzz.images import LabRecipe
from keybuzz.lab.errors import LabError, run
from keybuzz.registry import images

DEFAULT_IMAGE_ROOT = Path(os.environ.get("KEYBUZZ_LAB_IMAGES", "/srv/keybuzz-lab/images"))
SUITE = "bookworm"
REPOSITORY = "localhost/keybuzz-lab"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
PYTHON = "/usr/bin/python3"  # the machine's Debian Python builds the wheelhouses (not a pyenv one)

BASE = LabRecipe(SUITE, ("procps",))  # the lab's own image: every recipe builds on it; demo and bench use it


def recipes() -> dict[str, LabRecipe]:
    """versions.yaml key -> recipe: the lab base and every module image the lab can build."""
    return {"base": BASE, **{key: spec.lab for key, spec in images().items() if isinstance(spec.lab, LabRecipe)}}


def recipe_hash(key: str, recipe: LabRecipe, base_ref: str = "") -> str:
    blob = json.dumps({"recipe": {"key": key, **asdict(recipe)}, "base": base_ref, "suite": SUITE}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def image_refs() -> dict[str, str]:
    """versions.yaml key -> pinned local reference; pure, so the site can be written without building."""
    base_ref = f"{REPOSITORY}/base:{BASE.label}-{recipe_hash('base', BASE)}"
    refs = {"base": base_ref}
    for key, recipe in recipes().items():
        if key != "base":
            refs[key] = f"{REPOSITORY}/{key}:{recipe.label}-{recipe_hash(key, recipe, base_ref)}"
    return refs


def containerfile(recipe: LabRecipe, base_ref: str) -> str:
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
        refs, known = image_refs(), recipes()
        order = ["base", *[k for k in (keys or list(refs)) if k != "base"]]
        reports: list[BuildReport] = []
        with self.locked(), ThreadPoolExecutor(max_workers=1) as pool:
            present = self.inventory()
            missing = [key for key in order if refs[key] not in present]
            wheels = {key: pool.submit(self.wheelhouse, known[key]) for key in missing if known[key].wheels}
            for key in order:
                started = time.monotonic()
                if key in missing:
                    self.log(f"building {refs[key]} ...")
                    try:
                        if key == "base":
                            self._build_base(refs[key])
                        else:
                            if key in wheels:
                                wheels[key].result()
                            self._build_family(key, known[key], refs["base"], refs[key])
                    except LabError as exc:
                        raise LabError(f"building the lab image {key} ({refs[key]}) failed: {exc}. Fix: the lab "
                                       f"builds its images from Debian packages ({debian_mirror()}) and PyPI wheels; "
                                       "check that both are reachable and that scripts/setup-machine.sh ran, then "
                                       "`keybuzz lab images` builds what is missing") from None
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
            run(["sh", "-c", f"tar --numeric-owner -C {shlex.quote(str(rootfs))} -c . | "
                 + shlex.join(self.podman("import", "--change", "CMD=/bin/bash", "-", ref))], timeout=1200)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _build_family(self, key: str, recipe: LabRecipe, base_ref: str, ref: str) -> None:
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.root))
        try:
            (work / "Containerfile").write_text(containerfile(recipe, base_ref))
            volumes: list[str] = []
            if recipe.wheels:
                volumes = ["--volume", f"{self.wheelhouse(recipe)}:/wheelhouse:ro"]
            run(self.podman("build", "--isolation", "chroot", "--network", "host", "--layers=false", *volumes,
                            "-t", ref, "-f", str(work / "Containerfile"), str(work)), timeout=1800)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def docker_archive(self, ref: str) -> Path:
        """The image as a docker-archive tar, saved once per tag (the tag names the recipe), for the lab
        hosts' own dockerd (`docker load`): podman's store cannot be shared with a Docker engine."""
        target = self.root / "docker-archives" / (hashlib.sha256(ref.encode()).hexdigest()[:16] + ".tar")
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        try:
            run(self.podman("save", "--format", "docker-archive", "-o", str(partial), ref), timeout=600)
            partial.replace(target)  # a reader never sees half a tar
        finally:
            partial.unlink(missing_ok=True)
        return target

    def wheelhouse(self, recipe: LabRecipe) -> Path:
        """Wheels built on the control machine (hosts have no network beyond the lab)."""
        digest = hashlib.sha256("\n".join(recipe.wheels).encode()).hexdigest()[:10]
        target = self.root / f"wheelhouse-{digest}"
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            run([PYTHON, "-m", "pip", "wheel", "-q", "--wheel-dir", str(target), *recipe.wheels], timeout=1200)
            (target / ".complete").touch()
        return target
