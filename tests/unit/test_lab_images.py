"""Lab image recipes: pinned tags that change with the package list, and the machine's mirror."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from keybuzz.lab import images
from keybuzz.lab.errors import LabError
from keybuzz.site.versions import image_problem


def test_every_lab_image_is_pinned_and_local() -> None:
    refs = images.image_refs()
    assert set(refs) == {"base", "patroni", "pgbouncer", "redis", "haproxy", "rabbitmq", "seaweedfs", "mariadb",
                         "galera-health", "prometheus", "postgres-exporter", "redis-exporter", "mysqld-exporter"}
    for ref in refs.values():
        assert image_problem(ref) is None
        assert ref.startswith("localhost/keybuzz-lab/") and not ref.endswith(":latest")
    assert refs["patroni"].split(":")[1].startswith("4.1.5-pg16-")


def test_a_changed_package_list_gives_a_new_tag() -> None:
    recipe = images.recipes()["redis"]
    changed = dataclasses.replace(recipe, packages=(*recipe.packages, "procps"))
    assert images.recipe_hash("redis", recipe, "b") != images.recipe_hash("redis", changed, "b")
    assert images.recipe_hash("redis", recipe, "b") != images.recipe_hash("redis", recipe, "other-base")
    assert images.recipe_hash("redis", recipe, "b") == images.recipe_hash("redis", recipe, "b")


def test_containerfile_installs_the_packages_on_the_base() -> None:
    recipe = dataclasses.replace(images.recipes()["patroni"], before=("echo before the packages",))
    text = images.containerfile(recipe, "localhost/keybuzz-lab/base:x")
    lines = text.splitlines()
    assert lines[0] == "FROM localhost/keybuzz-lab/base:x"
    steps = lines[1].removeprefix("RUN set -e; ").split("; ")
    install = next(s for s in steps if s.startswith("apt-get install"))
    assert {"etcd-server", "python3-venv"} <= set(install.split())
    assert "--no-install-recommends" in install
    assert any("--no-index" in s and "patroni[raft,etcd3,psycopg3]==4.1.5" in s for s in steps)
    assert steps.index("echo before the packages") < steps.index(install)
    assert steps.index(install) < steps.index(next(s for s in steps if "pip install" in s))


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert images.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://ftp.example/debian bookworm main\n"
        "deb http://security.example bookworm-security main\n")
    assert images.debian_mirror(tmp_path) == "http://ftp.example/debian"


def test_mirror_falls_back_to_deb_debian_org(tmp_path: Path) -> None:
    assert images.debian_mirror(tmp_path) == images.FALLBACK_MIRROR


def _stub(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def fresh_store(tmp_path: Path, monkeypatch, *, debootstrap_rc: int = 0) -> tuple[images.ImageStore, Path]:
    """A machine with no image store yet: stub debootstrap, podman and pip first on PATH, calls recorded."""
    stubs, calls = tmp_path / "bin", tmp_path / "calls"
    stubs.mkdir()
    _stub(stubs, "debootstrap", f'echo "debootstrap $*" >> {calls}\n'
                                f'[ {debootstrap_rc} -eq 0 ] || {{ echo "E: Failed getting release file" >&2; '
                                f'exit {debootstrap_rc}; }}\n'
                                'for a; do root=$prev; prev=$a; done\n'  # the rootfs is the argument before the mirror
                                'mkdir -p "$root/usr/sbin" "$root/var/cache/apt/archives" "$root/var/lib/apt/lists"\n')
    _stub(stubs, "podman", f'echo "podman $*" >> {calls}\n'
                           'case "$*" in *" images "*) echo "[]";; *" import "*) cat > /dev/null;; esac\n')
    python = _stub(stubs, "python3", f'echo "pip $*" >> {calls}\n'
                                     'while [ $# -gt 0 ]; do [ "$1" = --wheel-dir ] && mkdir -p "$2"; shift; done\n')
    monkeypatch.setenv("PATH", f"{stubs}:{os.environ['PATH']}")
    monkeypatch.setattr(images, "PYTHON", str(python))
    return images.ImageStore(tmp_path / "images"), calls


def test_a_fresh_machine_builds_the_base_then_every_recipe(tmp_path: Path, monkeypatch) -> None:
    store, calls = fresh_store(tmp_path, monkeypatch)
    reports = store.ensure()
    assert [r.key for r in reports] == list(images.image_refs()) and not any(r.cached for r in reports)
    lines = calls.read_text().splitlines()
    base = [i for i, line in enumerate(lines) if line.startswith("debootstrap --variant=minbase")]
    imports = [i for i, line in enumerate(lines) if " import " in line]
    builds = [i for i, line in enumerate(lines) if " build " in line]
    assert len(base) == len(imports) == 1 and base[0] < imports[0] < builds[0]  # the base first, then on top
    assert len(builds) == len(images.recipes()) - 1  # every recipe but the base, which is imported
    assert any(line.startswith("pip -m pip wheel") for line in lines)  # the patroni wheelhouse, from PyPI


def test_a_failing_debootstrap_says_which_image_and_what_to_do(tmp_path: Path, monkeypatch) -> None:
    store, _ = fresh_store(tmp_path, monkeypatch, debootstrap_rc=1)
    with pytest.raises(LabError) as caught:
        store.ensure()
    message = str(caught.value)
    assert message.startswith("building the lab image base (localhost/keybuzz-lab/base:")
    assert "E: Failed getting release file" in message and "keybuzz lab images" in message
    assert not [p for p in (tmp_path / "images").iterdir() if p.name.startswith("base.")], "no half-built rootfs left"
