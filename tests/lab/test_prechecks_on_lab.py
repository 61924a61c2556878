"""Pre-checks on the lab: a wrong address and a taken port are found in seconds, before anything changes;
a module on servers without base_os is refused unless the operator allows it.

The site is a copy of the lab's with one redis server moved to an address where nothing answers
(silence, as a wrong IP or a dropped packet gives) and a foreign process listening on Sentinel's
port of another redis server. `install --only redis` must stop in under 10 s naming both, and
change nothing anywhere; with the right address and the port freed, the same install makes the
normal first-install changes. The session lab's hosts have no base_os: `install --only redis`
(and its dry-run) is refused naming every server of the module; `--allow-missing-base-os` installs
with a warning.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_runs import cleanup, install  # tests/lab is on sys.path
from rich.console import Console

from keybuzz.engine import Engine, PrecheckFailed, install_modules
from keybuzz.lab import Lab
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
REDIS = module_by_name("redis")


def managed_paths(lab: Lab, host: str) -> str:
    """What keybuzz put on a host for the redis module (files and containers)."""
    files = lab.exec(host, ["sh", "-c", "ls -R /opt/keybuzz/redis 2>/dev/null; podman ps -a --format '{{.Names}}'"])
    return files.stdout


@pytest.fixture(scope="module")
def lab_site(lab: Lab) -> Iterator[Site]:
    site = load_site(Path(lab.site_dir))
    cleanup(site, REDIS, purge_data=True)
    yield site
    cleanup(site, REDIS, purge_data=True)


def wrong_address_site(lab: Lab, tmp_path: Path, host: str) -> Path:
    root = tmp_path / "site"
    shutil.copytree(lab.site_dir, root)
    unused = ipaddress.IPv4Network(lab.subnet).network_address + 99  # no lab host there
    text = (root / "servers.tsv").read_text().replace(f"{lab.ip(host)}\t", f"{unused}\t")
    (root / "servers.tsv").write_text(text)
    return root


def test_a_wrong_address_and_a_taken_port_stop_install_in_seconds_changing_nothing(
        lab: Lab, lab_site: Site, tmp_path: Path) -> None:
    redis = [s.hostname for s in lab_site.with_role("redis")]
    wrong, taken = redis[-1], redis[0]
    site = load_site(wrong_address_site(lab, tmp_path, wrong))
    taken_ip = lab.ip(taken)
    lab.exec(taken, ["sh", "-c", f"setsid nohup python3 -m http.server 26379 --bind {taken_ip} "
                                 ">/dev/null 2>&1 </dev/null &"], check=True)
    before = {h: managed_paths(lab, h) for h in [*redis, *(s.hostname for s in lab_site.with_role("haproxy"))]}

    async def go() -> None:
        async with Engine(site, console=Console(file=io.StringIO(), width=200)) as engine:
            await install_modules(engine, [REDIS], allow_missing_base_os=True)  # no base_os on the session lab

    started = time.monotonic()
    try:
        with pytest.raises(PrecheckFailed) as caught:
            asyncio.run(go())
    finally:
        lab.exec(taken, ["pkill", "-f", "http.server 26379"])
    seconds = time.monotonic() - started
    print(f"\npre-checks stopped the install in {seconds:.1f} s: {caught.value}")
    assert seconds < 10
    assert {p.host for p in caught.value.problems} == {wrong, taken}, caught.value.problems
    unreachable = next(p for p in caught.value.problems if p.host == wrong)
    assert "unreachable over SSH" in unreachable.what and "servers.tsv" in unreachable.fix
    port = next(p for p in caught.value.problems if p.host == taken)
    assert "port 26379 (Redis Sentinel, module redis) is taken by another process" in port.what
    assert {h: managed_paths(lab, h) for h in before} == before, "a failed pre-check changed a host"

    first = install(lab_site, REDIS)  # the right addresses, the port free: a normal first install
    assert first.stats.changes > 0 and set(first.stats.changes_by_host) == set(before)


def test_a_module_on_servers_without_base_os_is_refused_unless_allowed(lab: Lab, lab_site: Site) -> None:
    hosts = [s.hostname for s in lab_site.servers if s.has("redis") or s.has("haproxy")]  # servers.tsv order
    before = {h: managed_paths(lab, h) for h in hosts}
    fix = f"keybuzz install --site {lab_site.root} --only base_os"
    for dry_run in (False, True):
        async def go(dry_run: bool = dry_run) -> None:
            async with Engine(lab_site, console=Console(file=io.StringIO(), width=200), dry_run=dry_run) as engine:
                await install_modules(engine, [REDIS])

        started = time.monotonic()
        with pytest.raises(PrecheckFailed) as caught:
            asyncio.run(go())
        print(f"\nwithout base_os{' (dry-run)' if dry_run else ''}: refused in {time.monotonic() - started:.1f} s")
        problems = caught.value.problems
        assert sorted(p.host for p in problems) == sorted(hosts), problems  # every server, nothing else
        assert all(p.missing_base_os and "base_os is not installed" in p.what and f"`{fix}`" in p.fix
                   for p in problems), problems
    assert {h: managed_paths(lab, h) for h in hosts} == before, "a refused install changed a host"
    allowed = install(lab_site, REDIS)  # engine_runs: --allow-missing-base-os
    warning = " ".join(allowed.output.split())  # the console wraps long lines
    assert f"warning: base_os is not installed on {', '.join(hosts)} (--allow-missing-base-os)" in warning
    assert f"until `{fix}`" in warning
    log = (lab_site.logs_dir / "install.log").read_text()
    assert f"base_os=missing hosts={','.join(hosts)} override=--allow-missing-base-os" in log
