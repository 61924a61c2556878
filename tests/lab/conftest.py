"""Lab fixtures: one small lab for the whole session, real hosts reached over SSH.

Environment (so several people can run lab tests on one machine at once):
  KEYBUZZ_TEST_LAB_DIR     lab folder of the session lab (default /srv/keybuzz-lab/pytest)
  KEYBUZZ_TEST_LAB_SUBNET  its subnet (default 10.78.0.0/16, not the 10.77 of `make up`)
A lab that is already up in that folder is reused and left running; one the session
started is removed at the end.

Under pytest-xdist (`make test` runs the lab tests with `-n 2 --dist loadfile`) each worker gets a lab of
its own: the folder with `-gw<N>` appended and the subnet moved by 2N /16s (a test file may take the /16
after its lab's for a lab of its own). A test file runs whole on one worker, on one lab, so the files
never see each other's faults; each file deploys what it needs.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keybuzz.lab import Lab

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under pytest-xdist; empty without it
WORKER_INDEX = int(WORKER.removeprefix("gw")) if WORKER else 0
_BASE_DIR = Path(os.environ.get("KEYBUZZ_TEST_LAB_DIR", "/srv/keybuzz-lab/pytest"))
_BASE_SUBNET = ipaddress.IPv4Network(os.environ.get("KEYBUZZ_TEST_LAB_SUBNET", "10.78.0.0/16"))
LAB_DIR = _BASE_DIR.with_name(f"{_BASE_DIR.name}-{WORKER}") if WORKER else _BASE_DIR
LAB_SUBNET = ipaddress.IPv4Network((int(_BASE_SUBNET.network_address) + 2 * WORKER_INDEX * 2 ** 16,
                                    _BASE_SUBNET.prefixlen))
TOOLS = ("podman", "dockerd", "debootstrap", "sshd", "ssh", "tini", "haproxy", "nsenter", "unshare", "ip", "nft",
         "losetup", "mkfs.xfs")
HERE = Path(__file__).parent


def lab_unavailable() -> str | None:
    """Why this machine cannot run the lab at all (then lab tests skip); None when it can."""
    if not sys.platform.startswith("linux"):
        return "the lab needs Linux namespaces"
    if os.geteuid() != 0:
        return "the lab needs root (namespaces, bridges, mounts): run `sudo make test`"
    probe = subprocess.run(["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"Linux namespaces unavailable here: {probe.stderr.strip()}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/lab carries the `lab` marker (`-m 'not lab'` runs the rest)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(autouse=True)
def _lab_guard() -> None:
    """Skip with the reason when the machine cannot run a lab; missing tools are a failure, not a skip."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup-machine.sh")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A running small lab (the servers of the modules the lab can run + 2 load-balancer hosts), site at `lab.site_dir`.

    Tests that inject faults must leave hosts up: call `lab.restore()` in a finally.
    """
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    session_lab = Lab(LAB_DIR)
    report = session_lab.up("small", LAB_SUBNET)  # a reused lab gets its down hosts booted, its links healed
    try:
        yield session_lab
    finally:
        if not report.already_up:
            session_lab.down()
