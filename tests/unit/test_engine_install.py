"""Engine orchestration without a lab: module selection, resume command, gates, phases, CLI guards."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import shlex
import socket
from pathlib import Path

import asyncssh
import pytest
from rich.console import Console
from typer.testing import CliRunner

from keybuzz import registry
from keybuzz.cli import app
from keybuzz.contract import CheckResult, DeployContext, Module, PendingModule
from keybuzz.engine import ConvergeFailed, Engine, InstallFailed, install_modules, resume_command, select_modules
from keybuzz.errors import OperationFailed
from keybuzz.registry import load_site
from keybuzz.render import FileSpec, HostPlan
from keybuzz.site.config import CoreConfig, Ssh
from keybuzz.site.model import Site
from keybuzz.site.servers import Server
from keybuzz.site.versions import Versions

MODULES = [PendingModule(2, "base_os", "Base OS", "app"), PendingModule(3, "postgres", "PG", "db"),
           PendingModule(4, "redis", "Redis", "redis")]


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_select_modules_by_name_number_and_start() -> None:
    assert [m.name for m in select_modules(MODULES, only=["redis", "3"])] == ["postgres", "redis"]
    assert [m.number for m in select_modules(MODULES, start_from=3)] == [3, 4]
    assert [m.name for m in select_modules(MODULES, start_from=4, only=["postgres", "redis"])] == ["redis"]
    with pytest.raises(KeyError, match="unknown module"):
        select_modules(MODULES, only=["nosuch"])
    with pytest.raises(KeyError, match="leaves no module"):
        select_modules(MODULES, only=["3"], start_from=4)


def test_resume_command_parses_back() -> None:
    command = resume_command(Path("/srv/my site"), MODULES[1], ["postgres", "redis"], dry_run=False)
    assert shlex.split(command) == ["keybuzz", "install", "--site", "/srv/my site", "--start-from-module", "3",
                                    "--only", "postgres,redis"]


def test_pending_modules_are_reported_not_silently_skipped(site: Site) -> None:
    async def run() -> list:
        async with Engine(site, console=quiet()) as engine:
            return await install_modules(engine, MODULES)

    results = asyncio.run(run())
    assert [(r.name, r.status) for r in results] == [("base_os", "not in this version"),
                                                     ("postgres", "not in this version"),
                                                     ("redis", "not in this version")]


def test_wait_for_times_out_naming_what_and_the_last_error(site: Site) -> None:
    calls = []

    async def probe() -> bool:
        calls.append(1)
        raise ConnectionRefusedError("port 5432 refused")

    async def run() -> None:
        async with Engine(site, console=quiet()) as engine:
            engine.module = "postgres"
            await engine.wait_for("leader elected", probe, timeout=0.3, interval=0.05)

    with pytest.raises(OperationFailed) as info:
        asyncio.run(run())
    assert "leader elected" in str(info.value) and "port 5432 refused" in str(info.value)
    assert info.value.module == "postgres" and len(calls) >= 2


def test_wait_for_is_skipped_in_dry_run_and_returns_when_probe_passes(site: Site) -> None:
    seen = []

    async def probe() -> bool:
        seen.append(1)
        return len(seen) >= 2

    async def run() -> None:
        async with Engine(site, console=quiet(), dry_run=True) as engine:
            await engine.wait_for("never probed", probe, timeout=0.1)
        assert seen == []
        async with Engine(site, console=quiet()) as engine:
            await engine.wait_for("second probe", probe, timeout=5, interval=0.01)

    asyncio.run(run())
    assert len(seen) == 2


def test_changes_made_outside_converge_are_counted_and_logged(site: Site) -> None:
    async def go() -> tuple[int, dict[str, int]]:
        async with Engine(site, console=quiet()) as engine:
            engine.module = "postgres"
            engine.changed("db-master-01", "PATCH /config: ttl")
            return engine.stats.changes, engine.stats.changes_by_host

    assert asyncio.run(go()) == (1, {"db-master-01": 1})
    log = (site.logs_dir / "install.log").read_text()
    assert "host=db-master-01 module=postgres step='PATCH /config: ttl' result=changed" in log


def test_phase_names_the_module_and_step_of_a_failure(site: Site) -> None:
    async def run() -> None:
        async with Engine(site, console=quiet()) as engine:
            engine.module = "redis"
            async with engine.phase("start sentinels"):
                raise OperationFailed("boom", host="redis-01")

    with pytest.raises(OperationFailed) as info:
        asyncio.run(run())
    assert (info.value.module, info.value.host, info.value.step) == ("redis", "redis-01", "start sentinels")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_host_is_a_per_host_error_naming_it(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    server = Server("db-9", ipaddress.IPv4Address("127.0.0.1"), None, ("db",), "db-9.example.org", 1)
    config = CoreConfig(ssh=Ssh(port=closed_port(), identity_file=str(key), known_hosts=None,
                                insecure_accept_any_host_key=True, connect_timeout_s=2, retries=1))
    site = Site(root=tmp_path, servers=[server], config=config, versions=Versions(images={}))
    plans = {"db-9": HostPlan("db-9", files=[FileSpec("/opt/keybuzz/x.conf", "x\n")])}

    async def run() -> None:
        async with Engine(site, console=quiet()) as engine:
            engine.module = "postgres"
            async with engine.phase("converge"):
                await engine.converge(["db-9"], plans)

    with pytest.raises(ConvergeFailed) as info:
        asyncio.run(run())
    assert set(info.value.failures) == {"db-9"}
    assert "db-9 (127.0.0.1:" in str(info.value) and "2 attempt(s)" in str(info.value)
    errors = (tmp_path / "logs" / "errors.log").read_text()
    assert "host=db-9" in errors


def test_cli_guards_exit_2_before_touching_anything(seed_site: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["install", "--site", str(seed_site), "--only", "nosuch"])
    assert result.exit_code == 2 and "unknown module" in result.output
    result = runner.invoke(app, ["install", "--site", str(seed_site), "--clean"])
    assert result.exit_code == 2 and "--yes" in result.output
    result = runner.invoke(app, ["install", "--site", str(seed_site), "--clean", "--skip-cleanup", "--yes"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["cleanup", "k3s", "--site", str(seed_site), "--yes"])
    assert result.exit_code == 2 and "not in this version of keybuzz" in result.output


class CheckOnly(Module):
    """A module whose checks need no host: exercises the CLI around validate and cleanup."""

    number, name, title, own_role = 50, "checkonly", "checks only", "db"

    def __init__(self, ok: bool):
        self.ok = ok

    def render(self, site: Site) -> dict:
        return {}

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return [CheckResult("always", self.ok, "detail [not markup]"), CheckResult("n/a here", False, "",
                                                                                   available=False)]


@pytest.mark.parametrize("ok", [True, False])
def test_validate_json_and_exit_code(seed_site: Path, monkeypatch: pytest.MonkeyPatch, ok: bool) -> None:
    monkeypatch.setattr(registry, "MODULES", [CheckOnly(ok), PendingModule(9, "k3s", "K3s", "k3s-master")])
    (seed_site / "keybuzz.yaml").write_text("")  # no section of the modules left out of the registry
    result = CliRunner().invoke(app, ["validate", "--site", str(seed_site), "--json"])
    assert result.exit_code == (0 if ok else 1), result.output
    report = json.loads(result.output)
    assert report["ok"] is ok
    checks = {c["name"]: c for c in report["modules"][0]["checks"]}
    assert checks["always"]["ok"] is ok and checks["n/a here"]["available"] is False
    assert report["modules"][1]["status"] == "not in this version"


def test_purge_data_needs_the_module_name_typed(seed_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "MODULES", [CheckOnly(True)])
    (seed_site / "keybuzz.yaml").write_text("")
    runner = CliRunner()
    result = runner.invoke(app, ["cleanup", "checkonly", "--site", str(seed_site), "--yes", "--purge-data",
                                 "--confirm", "postgres"])
    assert result.exit_code == 2 and "nothing was changed" in result.output
    result = runner.invoke(app, ["cleanup", "checkonly", "--site", str(seed_site), "--yes", "--purge-data"],
                           input="wrong\n")
    assert result.exit_code == 2 and "does not match" in result.output


def test_library_errors_become_located_failures_with_a_resume_command(site: Site) -> None:
    class Broken(CheckOnly):
        async def deploy(self, ctx: DeployContext, plans: dict) -> None:
            async with ctx.phase("connect to the database"):
                raise ConnectionRefusedError("port 5432 refused")

    class NoImage(CheckOnly):
        def render(self, site: Site) -> dict:
            return {"x": site.image("nosuch")}

    async def run(module: Module) -> None:
        async with Engine(site, console=quiet()) as engine:
            await install_modules(engine, [module], only=["checkonly"])

    with pytest.raises(InstallFailed) as info:
        asyncio.run(run(Broken(True)))
    assert (info.value.module, info.value.step) == ("checkonly", "connect to the database")
    assert "ConnectionRefusedError: port 5432 refused" in str(info.value)
    assert shlex.split(info.value.resume)[-4:] == ["--start-from-module", "50", "--only", "checkonly"]
    with pytest.raises(InstallFailed) as info:
        asyncio.run(run(NoImage(True)))
    assert (info.value.step, info.value.results[0].status) == ("render", "failed")
    assert "nosuch" in str(info.value)


def test_companion_roles_alone_do_not_make_a_module(seed_site: Path, kb) -> None:
    kb.write_servers(seed_site, [r for r in kb.small_rows() if "redis" not in r.roles])
    site = load_site(seed_site)
    assert registry.module_by_name("redis").hosts(site) == []  # haproxy servers alone: no Redis module
    assert {s.hostname for s in registry.module_by_name("postgres").hosts(site)} == {
        "haproxy-01", "haproxy-02", "db-0", "db-1", "db-2"}
