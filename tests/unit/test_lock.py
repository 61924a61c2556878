"""requirements.lock is what make installs: every package pinned with its hashes, in step with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes), from the lock's `name==version \\ --hash=...` blocks."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = REQUIREMENT.match(line)
        if match:
            current = normalised(match[1])
            assert current not in entries, f"{current} is locked twice"
            entries[current] = (match[2], 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"unexpected line in requirements.lock: {line!r}")
    return entries


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        match = REQUIREMENT.match(spec)
        assert match, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[normalised(match[1])] = match[2]
    return pins


def test_every_direct_dependency_is_locked_at_its_pinned_version() -> None:
    locked = lock_entries()
    disagree = {name: (version, locked.get(name, ("missing", 0))[0]) for name, version in pyproject_pins().items()
                if locked.get(name, ("", 0))[0] != version}
    assert disagree == {}, "pyproject.toml and requirements.lock disagree: run `make lock`"


def test_every_locked_package_carries_its_hashes() -> None:
    locked = lock_entries()
    assert len(locked) > len(pyproject_pins())  # the transitive ones are there too
    assert [name for name, (_, hashes) in locked.items() if hashes == 0] == []


def test_no_warning_reaches_the_operators_screen() -> None:
    done = subprocess.run([sys.executable, "-W", "default", "-m", "keybuzz", "--help"], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
