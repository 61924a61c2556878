"""scripts/setup-machine.sh on a simulated fresh machine: stub dpkg-query/apt-get/id first on PATH.

A fresh Debian 12 has none of the packages: dpkg-query then exits 1 (unknown names) and prints
nothing for them. The script must install what is missing and exit 0, and every failure must say
what failed and what to run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup-machine.sh"


def _listed_packages() -> list[str]:
    """The package names of the script's `packages=( ... )` array, comments dropped."""
    text = SCRIPT.read_text()
    body = text.split("packages=(", 1)[1].split("\n)", 1)[0]
    return [word for line in body.splitlines() for word in line.split("#", 1)[0].split()]


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def run_setup(tmp_path: Path, *, installed: tuple[str, ...] = (), uid: int = 0, update_rc: int = 0,
              install_rc: int = 0) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with stubs; returns its result and the apt-get calls it made."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "apt-calls"
    known = "".join(f'echo "{name} installed"\n' for name in installed)
    # Like the real dpkg-query on a fresh machine: known packages printed, exit 1 if any name is unknown.
    _stub(stubs, "dpkg-query", known + ("exit 0\n" if set(_listed_packages()) <= set(installed) else "exit 1\n"))
    _stub(stubs, "apt-get", f'echo "$*" >> {calls}\n'
                            f'case "$*" in *update*) exit {update_rc};; *install*) exit {install_rc};; esac\n')
    _stub(stubs, "id", f"echo {uid}\n")
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "KEYBUZZ_POLICY_RC_D": str(tmp_path / "policy-rc.d")}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30, check=False)
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_fresh_machine_installs_every_package_and_succeeds(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[0].split()[0] == "update"
    installed = calls[1].split()
    assert installed[:3] == ["install", "-y", "-q"]
    assert sorted(installed[3:]) == sorted(_listed_packages())
    policy = tmp_path / "policy-rc.d"
    assert policy.read_text().rstrip().endswith("exit 101") and os.access(policy, os.X_OK)


def test_only_the_missing_packages_are_installed(tmp_path: Path) -> None:
    present = tuple(p for p in _listed_packages() if p not in ("podman", "tini"))
    result, calls = run_setup(tmp_path, installed=present)
    assert result.returncode == 0, result.stderr
    assert calls[1].split()[3:] == ["podman", "tini"]


def test_nothing_to_do_calls_no_apt(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path, installed=tuple(_listed_packages()))
    assert (result.returncode, calls) == (0, [])


@pytest.mark.parametrize(("update_rc", "install_rc", "said"), [
    (100, 0, "apt-get update failed"),
    (0, 100, "apt-get install failed"),
])
def test_apt_failure_says_what_failed_and_what_to_run(tmp_path: Path, update_rc: int, install_rc: int,
                                                       said: str) -> None:
    result, _ = run_setup(tmp_path, update_rc=update_rc, install_rc=install_rc)
    assert result.returncode != 0
    assert said in result.stderr
    assert "fix:" in result.stderr and "apt-get install -y" in result.stderr and "podman" in result.stderr


def test_not_root_names_the_packages_and_the_sudo_command(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path, uid=1000)
    assert result.returncode != 0 and calls == []
    assert "needs root" in result.stderr and "sudo sh -c" in result.stderr and "debootstrap" in result.stderr
