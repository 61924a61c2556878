"""The production image recipe of the Galera health agent (not buildable here: no registry): parsed and pinned."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from dockerfile import instructions  # tests/unit is on sys.path

from keybuzz.modules.mariadb import layout, render

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "images" / "galera-health"


def test_base_is_a_pinned_python_311_bookworm_and_the_command_is_the_rendered_agent() -> None:
    steps = instructions(IMAGE_DIR)
    assert [keyword for keyword, _ in steps].count("FROM") == 1
    base = next(rest for keyword, rest in steps if keyword == "FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base)
    assert json.loads(next(rest for keyword, rest in steps if keyword == "CMD")) == ["python3", layout.C_AGENT]
    assert ("USER", render.AGENT_USER) in steps
    assert ("EXPOSE", str(layout.HEALTH_PORT)) in steps


def test_requirements_pin_the_pymysql_the_tests_run_with() -> None:
    lines = [line for line in (IMAGE_DIR / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = project["project"]["dependencies"]
    assert lines == [pin for pin in pins if pin.lower().startswith("pymysql==")]
    assert not any("latest" in rest for _, rest in instructions(IMAGE_DIR))
