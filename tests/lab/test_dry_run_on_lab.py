"""A new user's first look: `keybuzz install --dry-run` of a brand-new site, every module, on hosts that never
had keybuzz. It must complete (each step that needs a running service says what it would do instead) and
change nothing on any host: no file, no container, no firewall rule.

Its own lab (the session lab has modules installed by the other tests): a folder next to the session lab's
and the /16 after its subnet; booting 24 hosts costs seconds, the dry-run about ten.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
from collections.abc import Iterator

import pytest
from rich.console import Console

from keybuzz.engine import Engine, install_modules
from keybuzz.lab import Lab
from keybuzz.registry import MODULES, load_site

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def fresh_lab(lab: Lab) -> Iterator[Lab]:
    """Next to the session lab: its folder's sibling, the /16 after its subnet."""
    fresh = Lab(lab.dir.parent / f"{lab.dir.name}-dry-run")
    if (fresh.dir / "site").exists():
        fresh.down()  # left by an interrupted run: start from hosts that never had keybuzz
    fresh.up("small", ipaddress.IPv4Network((int(lab.subnet.network_address) + 2 ** 16, 16)))
    try:
        yield fresh
    finally:
        fresh.down()


def host_state(lab: Lab) -> dict[str, str]:
    """Per host: every file keybuzz could write (the hosts' private /etc, /opt, /var layers and data folders,
    with size and mtime), the containers and the firewall. /var/tmp is podman's scratch space."""
    def one(host: str) -> str:
        files = lab.exec(host, ["sh", "-c", "find /etc /opt /var -xdev -path /var/tmp -prune -o "
                                "\\( -type f -o -type l \\) -newer /proc/1/cmdline -printf '%p %s %T@\\n' | sort; "
                                "podman ps -a --format '{{.Names}}'; nft list ruleset"], check=True).stdout
        return files

    return {host: one(host) for host in lab.hosts}


def test_dry_run_of_a_new_site_completes_every_module_and_changes_nothing(fresh_lab: Lab) -> None:
    site = load_site(fresh_lab.site_dir)
    before = host_state(fresh_lab)
    buffer = io.StringIO()

    async def go() -> list:
        async with Engine(site, console=Console(file=buffer, width=200), dry_run=True) as engine:
            return await install_modules(engine, MODULES)

    results = asyncio.run(go())
    text = buffer.getvalue()
    implemented = [r for r in results if r.status != "not in this version"]
    assert [r.status for r in implemented] == ["would install"] * len(implemented), text
    assert all(r.changes > 0 for r in implemented), text  # each shows what it would do on hosts without it
    assert "at their first start the nodes import definitions.json" in text  # said, not asked of a RabbitMQ
    assert "Traceback" not in text and "URLError" not in text
    assert host_state(fresh_lab) == before
