"""Lab image recipes: pinned tags that change with the package list, and the machine's mirror."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from keybuzz.lab import images
from keybuzz.site.versions import image_problem


def test_every_lab_image_is_pinned_and_local() -> None:
    refs = images.image_refs()
    assert set(refs) == {"base", "patroni", "pgbouncer", "redis", "haproxy"}
    for ref in refs.values():
        assert image_problem(ref) is None
        assert ref.startswith("localhost/keybuzz-lab/") and not ref.endswith(":latest")
    assert refs["patroni"].split(":")[1].startswith("4.1.5-pg15-")


def test_a_changed_package_list_gives_a_new_tag() -> None:
    recipe = images.recipes()["redis"]
    changed = dataclasses.replace(recipe, packages=(*recipe.packages, "procps"))
    assert images.recipe_hash("redis", recipe, "b") != images.recipe_hash("redis", changed, "b")
    assert images.recipe_hash("redis", recipe, "b") != images.recipe_hash("redis", recipe, "other-base")
    assert images.recipe_hash("redis", recipe, "b") == images.recipe_hash("redis", recipe, "b")


def test_containerfile_installs_the_packages_on_the_base() -> None:
    text = images.containerfile(images.recipes()["patroni"], "localhost/keybuzz-lab/base:x")
    lines = text.splitlines()
    assert lines[0] == "FROM localhost/keybuzz-lab/base:x"
    steps = lines[1].removeprefix("RUN set -e; ").split("; ")
    install = next(s for s in steps if s.startswith("apt-get install"))
    assert {"postgresql-15", "etcd-server", "python3-venv"} <= set(install.split())
    assert "--no-install-recommends" in install
    assert any("--no-index" in s and "patroni[raft,etcd3,psycopg3]==4.1.5" in s for s in steps)
    assert steps.index(next(s for s in steps if "createcluster.conf" in s)) < steps.index(install)


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
