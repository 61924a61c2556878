"""Shared fixtures for the core unit tests: a freshly initialised seed site and small helpers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from keybuzz.registry import load_site, write_example_site
from keybuzz.site import Site
from keybuzz.site.writer import ServerRow, servers_tsv

HEADER = "hostname\tprivate_ip\tpublic_ip\troles\tfqdn"


@pytest.fixture
def seed_site(tmp_path: Path) -> Path:
    """What `keybuzz init DIR --example seed` writes, in a temporary folder."""
    root = tmp_path / "site"
    write_example_site(root)
    return root


@pytest.fixture
def site(seed_site: Path) -> Site:
    """The seed site, loaded (credentials registered for redaction)."""
    return load_site(seed_site)


def _secret_values(site: Path) -> list[str]:
    """The real generated secret values of a site, read from its credentials files."""
    values = []
    for env in sorted((site / "credentials").glob("*.env")):
        for line in env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.endswith(("_PASSWORD", "_TOKEN", "_COOKIE", "_SECRET", "_KEY")):
                values.append(value)
    assert len(values) >= 15, "the seed site must have generated secrets to look for"
    return values


def _write_servers(site: Path, rows: list[ServerRow]) -> None:
    (site / "servers.tsv").write_text(servers_tsv(rows, "test inventory"))


def _small_rows() -> list[ServerRow]:
    """A small valid inventory: 2 haproxy, 3 db, 3 redis (the lab's small topology, seed IPs)."""
    return [
        ServerRow("haproxy-01", "10.0.0.11", ("haproxy",)),
        ServerRow("haproxy-02", "10.0.0.12", ("haproxy",)),
        *[ServerRow(f"db-{i}", f"10.0.0.{120 + i}", ("db",)) for i in range(3)],
        *[ServerRow(f"redis-{i}", f"10.0.0.{123 + i}", ("redis",)) for i in range(3)],
    ]


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root with its mode and content hash: compare before/after to prove nothing changed."""
    state: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            state[str(path.relative_to(root))] = (path.stat().st_mode, digest)
    return state


def _retune(site: Path, section: str, **values: object) -> Site:
    """Change keybuzz.yaml's tuning.<section> keys and load the site again."""
    config_path = site / "keybuzz.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("tuning", {}).setdefault(section, {}).update(values)
    config_path.write_text(yaml.safe_dump(config))
    return load_site(site)


class Helpers:
    """Helpers as a fixture (test files cannot import conftest reliably)."""

    secret_values = staticmethod(_secret_values)
    write_servers = staticmethod(_write_servers)
    small_rows = staticmethod(_small_rows)
    tree = staticmethod(_tree)
    retune = staticmethod(_retune)
    header = HEADER


@pytest.fixture
def kb() -> type[Helpers]:
    return Helpers
