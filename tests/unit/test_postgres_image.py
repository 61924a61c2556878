"""The production Patroni image recipe (not buildable here: no registry): parsed and pinned."""

from __future__ import annotations

import re
from pathlib import Path

from dockerfile import instructions  # tests/unit is on sys.path

from keybuzz.registry import seed_versions

IMAGE_DIR = Path(__file__).resolve().parents[2] / "images" / "patroni"


def args() -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in instructions(IMAGE_DIR) if keyword == "ARG" and "=" in rest)


def test_dockerfile_parses_into_known_instructions() -> None:
    known = {"ARG", "FROM", "LABEL", "RUN", "COPY", "ENV", "USER", "EXPOSE", "ENTRYPOINT", "CMD"}
    keywords = [keyword for keyword, _ in instructions(IMAGE_DIR)]
    assert set(keywords) <= known
    assert keywords.count("FROM") == 1 and keywords[-1] == "CMD"


def test_base_is_the_pinned_postgres_16_of_versions_yaml() -> None:
    base = args()["POSTGRES_IMAGE"]
    assert base == seed_versions()["images"]["postgres"]
    assert re.fullmatch(r"postgres:16\.\d+-bookworm", base)
    assert args()["PG_MAJOR"] == "16"


def test_versions_pinned_and_never_latest() -> None:
    used = " ".join(rest for _, rest in instructions(IMAGE_DIR)) + (IMAGE_DIR / "requirements.txt").read_text()
    assert "latest" not in used
    assert args()["PATRONI_VERSION"] == seed_versions()["software"]["patroni"] == "4.1.5"
    assert args()["PGVECTOR_VERSION"] == seed_versions()["software"]["pgvector"]
    assert any("pgvector=${PGVECTOR_VERSION}" in rest for keyword, rest in instructions(IMAGE_DIR) if keyword == "RUN")


def test_requirements_pin_every_package_with_the_extras() -> None:
    lines = [line for line in (IMAGE_DIR / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z0-9,]+\])?==[0-9][A-Za-z0-9.]*", line) for line in lines), lines
    names = {line.split("==")[0] for line in lines}
    assert "patroni[raft,etcd3,psycopg3]" in names
    assert {"pysyncobj", "python-etcd", "cryptography", "psycopg[binary]"} <= names
    assert "patroni[raft,etcd3,psycopg3]==4.1.5" in lines


def test_entrypoint_matches_what_keybuzz_runs() -> None:
    from keybuzz.modules.postgres.render import PATRONI_START

    script = (IMAGE_DIR / "entrypoint.sh").read_text()
    assert "for d in /usr/lib/postgresql/*/bin" in script and "for d in /usr/lib/postgresql/*/bin" in PATRONI_START
    assert "exec /opt/patroni/bin/patroni" in script and "exec /opt/patroni/bin/patroni" in PATRONI_START
    assert dict(instructions(IMAGE_DIR))["USER"] == "postgres"
