"""The engine on the lab: real SSH into namespace hosts, real podman, the throwaway demo module.

Converge twice (Molecule): the second run changes nothing and restarts nothing; one setting
changes only its host; dry-run shows diffs and touches nothing; a powered-off host is a clear
per-host error while the others converge; secrets never reach the output or the logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_module import CONTAINER, DemoModule  # tests/lab is on sys.path (pytest rootdir import mode)
from rich.console import Console

from keybuzz.engine import ConvergeFailed, Engine, InstallFailed, PrecheckFailed, Stats, cleanup_module, install_modules
from keybuzz.lab import Lab
from keybuzz.registry import load_site
from keybuzz.site import Site

pytestmark = pytest.mark.lab


@dataclasses.dataclass
class Run:
    stats: Stats
    output: str
    results: list
    handshakes: int


def run(site: Site, module: DemoModule, *, dry_run: bool = False) -> Run:
    buffer = io.StringIO()

    async def go() -> Run:
        async with Engine(site, dry_run=dry_run, console=Console(file=buffer, width=240)) as engine:
            try:
                results = await install_modules(engine, [module], allow_missing_base_os=True)
            except InstallFailed as exc:
                exc.stats, exc.output = engine.stats, buffer.getvalue()  # type: ignore[attr-defined]
                raise
            return Run(engine.stats, buffer.getvalue(), results, engine.pool.opened)

    return asyncio.run(go())


def cleanup(site: Site, *, purge_data: bool) -> Stats:
    async def go() -> Stats:
        async with Engine(site, console=Console(file=io.StringIO())) as engine:
            await cleanup_module(engine, DemoModule(), purge_data=purge_data)
            return engine.stats

    return asyncio.run(go())


def containers(lab: Lab, host: str) -> dict[str, str]:
    """name -> "id start-time" on a host, read with podman inside the host (not through the engine)."""
    out = lab.exec(host, ["podman", "ps", "-a", "--format", "{{.Names}} {{.ID}} {{.StartedAt}}"], check=True).stdout
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines() if line.strip()}


def spare_host(site: Site) -> str:
    """A host no module of this version uses (an app server): faults there disturb no other lab test."""
    return next(s.hostname for s in site.servers if s.roles == ("app",))


def logs(site: Site) -> str:
    return "".join((site.logs_dir / name).read_text() for name in ("install.log", "errors.log")
                   if (site.logs_dir / name).exists())


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    loaded = load_site(Path(lab.site_dir))
    cleanup(loaded, purge_data=True)
    yield loaded
    cleanup(loaded, purge_data=True)


@pytest.fixture(scope="module")
def installed(site: Site) -> Run:
    return run(site, DemoModule())


def test_first_install_creates_files_and_one_container_per_host(site: Site, installed: Run, lab: Lab) -> None:
    hosts = sorted(DemoModule().render(site))
    assert installed.results[0].status == "installed"
    assert all(check.ok for check in installed.results[0].checks), installed.results[0].checks
    assert set(installed.stats.changes_by_host) == set(hosts)
    assert installed.stats.restarts == len(hosts)
    assert installed.handshakes == len(hosts)  # pre-checks, converge, gate and validate share one connection each
    # One line per phase and one summary of the hosts changed, not a line per file of every host:
    assert "changed " not in installed.output and "/opt/keybuzz/demo/demo.conf" not in installed.output
    assert f"demo: {len(hosts)} host(s) changed: " in installed.output
    assert "ok demo: files and containers on every host" in installed.output
    assert "host=" in (site.logs_dir / "install.log").read_text()  # every action is still in the log
    assert CONTAINER in containers(lab, hosts[0])
    env = lab.exec(hosts[0], ["stat", "-c", "%a", "/opt/keybuzz/demo/demo.env"], check=True).stdout.strip()
    assert env == "600"


def test_rerun_changes_nothing_and_restarts_nothing(site: Site, installed: Run, lab: Lab) -> None:
    host = sorted(DemoModule().render(site))[0]
    before = containers(lab, host)
    again = run(site, DemoModule())
    assert (again.stats.changes, again.stats.restarts) == (0, 0)
    assert containers(lab, host) == before  # same container id: not recreated


def test_stopped_or_removed_container_is_noticed(site: Site, installed: Run, lab: Lab) -> None:
    """The cached `podman ps` of a probe is invalidated by any container state change."""
    hosts = sorted(DemoModule().render(site))
    run(site, DemoModule())  # warm the per-host listing cache
    lab.exec(hosts[0], ["podman", "stop", "-t", "1", CONTAINER], check=True)
    lab.exec(hosts[1], ["podman", "rm", "-f", CONTAINER], check=True)
    fixed = run(site, DemoModule())
    assert fixed.stats.restarts_by_container == {f"{hosts[0]}/{CONTAINER}": 1, f"{hosts[1]}/{CONTAINER}": 1}
    assert fixed.stats.changes == 2
    assert run(site, DemoModule()).stats.changes == 0


def test_one_setting_changes_only_the_affected_host(site: Site, installed: Run, lab: Lab) -> None:
    hosts = sorted(DemoModule().render(site))
    target, other = hosts[1], hosts[0]
    other_before = containers(lab, other)
    changed = run(site, DemoModule(per_host={target: "changed"}))
    assert changed.stats.changes_by_host == {target: 2}  # the config file and its container
    assert changed.stats.restarts_by_container == {f"{target}/{CONTAINER}": 1}
    assert containers(lab, other) == other_before
    conf = lab.exec(target, ["podman", "exec", CONTAINER, "cat", "/etc/demo.conf"], check=True).stdout
    assert conf.splitlines()[0] == "message=changed"
    back = run(site, DemoModule())
    assert back.stats.changes_by_host == {target: 2}


def test_dry_run_shows_diffs_changes_nothing_and_never_a_secret(site: Site, installed: Run, lab: Lab) -> None:
    module = DemoModule(message="dry", secret_suffix="X9")
    hosts = sorted(module.render(site))
    before = {h: containers(lab, h) for h in hosts[:2]}
    preview = run(site, module, dry_run=True)
    assert preview.stats.changes == 3 * len(hosts)  # conf, env file and container recreate per host
    out = preview.output
    for host in hosts:
        assert f"+++ {host}:/opt/keybuzz/demo/demo.conf" in out
        assert f"--- {host}:/opt/keybuzz/demo/demo.env" in out
    diff_lines = out.splitlines()
    assert "-message=hello" in diff_lines and "+message=dry" in diff_lines
    assert "+<redacted>" in diff_lines and "-<redacted>" in diff_lines
    assert module.secret(site) not in out and DemoModule().secret(site) not in out
    assert "health gate skipped" in out
    # Nothing changed on the hosts: the same module converges with 0 changes, containers untouched.
    assert {h: containers(lab, h) for h in hosts[:2]} == before
    assert run(site, DemoModule()).stats.changes == 0
    text = logs(site)
    assert "would-change" in text
    assert module.secret(site) not in text and DemoModule().secret(site) not in text


def test_powered_off_host_stops_the_install_before_any_change(site: Site, installed: Run, lab: Lab) -> None:
    """Found by the pre-checks in seconds; a host lost later (after them) spares the others."""
    hosts = sorted(DemoModule().render(site))
    off = spare_host(site)
    quick = dataclasses.replace(site, config=site.config.model_copy(
        update={"ssh": site.config.ssh.model_copy(update={"connect_timeout_s": 3.0, "retries": 1})}))
    lab.poweroff(off)
    try:
        started = time.monotonic()
        with pytest.raises(PrecheckFailed) as refused:
            run(site, DemoModule(message="while-off"))
        assert time.monotonic() - started < 10
        assert [(p.host, p.ip) for p in refused.value.problems] == [(off, lab.ip(off))]
        assert f"{off} ({lab.ip(off)}:22) unreachable over SSH after 1 attempt(s)" in refused.value.problems[0].what

        async def converge_past_the_prechecks() -> Stats:
            async with Engine(quick, console=Console(file=io.StringIO())) as engine:
                engine.module = "demo"
                try:
                    async with engine.phase("converge"):
                        await engine.converge(hosts, DemoModule(message="while-off").render(quick))
                finally:
                    stats = engine.stats
            return stats

        with pytest.raises(ConvergeFailed) as info:
            asyncio.run(converge_past_the_prechecks())
        error = info.value
        assert error.host == off and error.module == "demo" and set(error.failures) == {off}
        assert f"{off} ({lab.ip(off)}:22) unreachable over SSH after 2 attempt(s)" in str(error)
        assert error.changes == 2 * (len(hosts) - 1)  # the config file and the recreated container of each other host
        assert f"host={off}" in (site.logs_dir / "errors.log").read_text()
    finally:
        lab.boot(off)
    after = run(site, DemoModule(message="while-off"))
    assert set(after.stats.changes_by_host) == {off}
    run(site, DemoModule())


def test_cleanup_keeps_data_until_purge(site: Site, installed: Run, lab: Lab) -> None:
    host = sorted(DemoModule().render(site))[0]
    lab.exec(host, ["sh", "-c", "echo keep > /opt/keybuzz/demo/data/state"], check=True)
    removed = cleanup(site, purge_data=False)
    assert removed.changes > 0
    assert CONTAINER not in containers(lab, host)
    assert lab.exec(host, ["cat", "/opt/keybuzz/demo/data/state"]).stdout == "keep\n"
    assert lab.exec(host, ["test", "-e", "/opt/keybuzz/demo/demo.conf"]).returncode == 1
    assert cleanup(site, purge_data=False).changes == 0
    cleanup(site, purge_data=True)
    assert lab.exec(host, ["test", "-e", "/opt/keybuzz/demo"]).returncode == 1


def test_line_in_file_and_sysctl_with_dry_run(site: Site, installed: Run, lab: Lab) -> None:
    host = spare_host(site)
    path, key = "/etc/keybuzz-demo-lines.conf", "net.ipv4.tcp_keepalive_time"  # sysctl: per network namespace
    lab.exec(host, ["sh", "-c", f"printf 'a = 1\\nkey = 1\\n' > {path}"], check=True)

    def edit(dry_run: bool) -> tuple[int, int, str]:
        buffer = io.StringIO()

        async def go() -> tuple[int, int]:
            async with Engine(site, dry_run=dry_run, console=Console(file=buffer, width=200)) as engine:
                engine.module = "demo"
                line = await engine.ensure_line(host, path, "key = 2", match=r"^key\s*=")
                return line, await engine.sysctl(host, key, "600")

        line, sysctl = asyncio.run(go())
        return line, sysctl, buffer.getvalue()

    def live() -> str:
        return lab.exec(host, ["sysctl", "-n", key], check=True).stdout.strip()

    try:
        line, sysctl, out = edit(dry_run=True)
        assert (line, sysctl) == (1, 2)  # the line; the sysctl.d line and the live value
        assert "-key = 1" in out.splitlines() and "+key = 2" in out.splitlines()
        assert lab.exec(host, ["cat", path]).stdout == "a = 1\nkey = 1\n" and live() == "7200"
        assert edit(dry_run=False)[:2] == (1, 2)
        assert lab.exec(host, ["cat", path]).stdout == "a = 1\nkey = 2\n" and live() == "600"
        assert "net.ipv4.tcp_keepalive_time = 600" in lab.exec(host, ["cat", "/etc/sysctl.d/99-keybuzz.conf"]).stdout
        assert edit(dry_run=False)[:2] == (0, 0)
    finally:
        lab.exec(host, ["sh", "-c", f"rm -f /etc/sysctl.d/99-keybuzz.conf {path}; sysctl -qw {key}=7200"])
