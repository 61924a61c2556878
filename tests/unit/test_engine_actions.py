"""Change detection: probe output parsing and plan-vs-state actions (what a re-run does)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from keybuzz import services
from keybuzz.containers import ContainerCli, ContainerSpec
from keybuzz.errors import OperationFailed
from keybuzz.remote.actions import plan_actions, probed_paths, removal_actions, watched_hashes, write_command
from keybuzz.remote.probe import HostState, PathState, owner_matches, parse_probe, probe_script
from keybuzz.render import DirSpec, FileSpec, HostPlan, HostService

CONF = "/opt/keybuzz/demo/demo.conf"
CONTENT = "message=hi\n"

PODMAN = ContainerCli("podman")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def container(**changes: object) -> ContainerSpec:
    base: dict[str, object] = dict(name="keybuzz-demo", image="localhost/base:1", module="demo",
                                   command=("sleep", "infinity"), restart_on=(CONF,))
    base.update(changes)
    return ContainerSpec(**base)  # type: ignore[arg-type]


def plan(*, content: str = CONTENT, mode: int = 0o644, create_only: bool = False) -> HostPlan:
    return HostPlan("demo-1", [DirSpec("/opt/keybuzz/demo")],
                    [FileSpec(CONF, content, mode=mode, create_only=create_only)], [container()])


def converged(p: HostPlan, *, state: str = "running", spec_hash: str | None = None) -> HostState:
    """The state a host is in after a successful converge of plan p."""
    wanted = spec_hash if spec_hash is not None else p.containers[0].spec_hash(watched_hashes(p, HostState()))
    out = ("#S\nS\t/opt/keybuzz/demo\tdirectory\t755\troot:root\t0:0\n"
           f"S\t{CONF}\tregular file\t644\troot:root\t0:0\n"
           f"#H\n{digest(CONTENT)}  {CONF}\n"
           f"#C\nkeybuzz-demo\t{state}\tio.keybuzz.module=demo,io.keybuzz.spec-hash={wanted}\n")
    return parse_probe(out)


def test_probe_parses_docker_and_podman_container_lines() -> None:
    state = parse_probe("#C\npg\tUp 3 minutes\tmap[io.keybuzz.module:postgres io.keybuzz.spec-hash:abc]\n"
                        "redis\texited\tio.keybuzz.spec-hash=def,io.keybuzz.module=redis\n"
                        "other\tUp 1 second\t\n")
    assert state.containers["pg"].running and state.containers["pg"].spec_hash == "abc"
    assert state.containers["pg"].module == "postgres"
    assert not state.containers["redis"].running and state.containers["redis"].spec_hash == "def"
    assert state.containers["other"].spec_hash == "" and state.containers["other"].module == ""


def test_probe_script_is_valid_shell_quoting_every_path() -> None:
    script = probe_script(["/opt/a b/c.conf", "/opt/x"], "podman")
    stat_line = next(line for line in script.splitlines() if "stat " in line)
    words = shlex.split(stat_line.split(";", 1)[1])
    assert words[words.index("--") + 1:] == ["/opt/a b/c.conf", "/opt/x", "2>/dev/null"]
    assert "podman ps -a" in script
    assert "ps -a" not in probe_script(["/opt/x"], None)


def test_probe_reports_container_cli_errors() -> None:
    state = parse_probe("#C\n#X\nsh: podman: not found\n")
    assert "not found" in state.container_error
    with pytest.raises(OperationFailed, match="ps"):
        plan_actions(plan(), state, PODMAN)


def test_first_run_creates_everything_and_counts_one_restart() -> None:
    actions = plan_actions(plan(), HostState(), PODMAN)
    assert [(a.kind, a.summary) for a in actions] == [("directory", "create"), ("file", "create"),
                                                      ("container", "create")]
    assert sum(a.restarts for a in actions) == 1


def test_rerun_on_converged_host_is_a_no_op() -> None:
    p = plan()
    assert plan_actions(p, converged(p), PODMAN) == []


def test_changed_restart_on_file_recreates_the_container() -> None:
    old = plan()
    new = plan(content="message=changed\n")
    actions = plan_actions(new, converged(old), PODMAN)
    assert [(a.kind, a.target) for a in actions] == [("file", CONF), ("container", "keybuzz-demo")]
    assert actions[1].summary.startswith("recreate") and actions[1].restarts == 1
    steps = [step.strip() for step in actions[1].command.split(";")]
    # the image is there (inspect, else pull) before the old container is stopped; any failure stops the script
    assert steps[0] == "set -e"
    assert steps[1].startswith("{ podman image inspect ") and "|| podman pull -q " in steps[1]
    stop = next(i for i, step in enumerate(steps) if step.startswith("podman stop"))
    assert stop > 1 and shlex.split(steps[-1])[:2] == ["podman", "run"]


def test_stopped_container_is_started_not_recreated() -> None:
    p = plan()
    actions = plan_actions(p, converged(p, state="Exited"), PODMAN)
    assert [(a.kind, shlex.split(a.command)[:2]) for a in actions] == [("container", ["podman", "start"])]


def test_mode_only_difference_is_fixed_through_the_write_path_and_restarts_nothing() -> None:
    p = plan(mode=0o640)
    actions = plan_actions(p, converged(plan()), PODMAN)
    assert [(a.kind, a.summary, a.restarts) for a in actions] == [("metadata", "mode 0644 -> 0640", 0)]
    # the same content again, through the write that never follows a link (no chown/chmod on the path)
    assert actions[0].stdin == CONTENT and actions[0].command == write_command(CONF, 0o640, "root", digest(CONTENT))


def test_create_only_file_is_never_overwritten_nor_restarts_its_container() -> None:
    state = converged(plan(create_only=True))  # first install wrote it; the service rewrote it since
    p = plan(content="a new render\n", create_only=True)
    assert [a.kind for a in plan_actions(p, state, PODMAN)] == []
    assert [a.kind for a in plan_actions(p, HostState(), PODMAN)][:2] == ["directory", "file"]


def test_path_of_the_wrong_kind_is_an_error() -> None:
    state = HostState(paths={CONF: PathState(kind="directory", mode=0o755)})
    with pytest.raises(OperationFailed, match="not a regular file"):
        plan_actions(plan(), state, PODMAN)


def test_write_command_never_carries_content_and_renames_atomically(tmp_path) -> None:
    content = "SOME_PASSWORD=not-in-argv\n"
    target = tmp_path / "a b.conf"
    command = write_command(str(target), 0o640, str(os.getuid()), hashlib.sha256(content.encode()).hexdigest())
    assert "not-in-argv" not in command
    done = subprocess.run(["sh", "-c", command], input=content, text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == content and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a b.conf"]


def test_write_command_refuses_a_truncated_upload(tmp_path) -> None:
    content = "KEY=value\n" * 10
    target = tmp_path / "x.env"
    target.write_text("old\n")
    command = write_command(str(target), 0o600, str(os.getuid()), hashlib.sha256(content.encode()).hexdigest())
    cut = subprocess.run(["sh", "-c", command], input=content[:25], text=True, capture_output=True, check=False)
    assert cut.returncode != 0
    assert target.read_text() == "old\n"  # the half-written file never replaced the good one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.env"]


NOBODY = 65534


def run_write(target: Path, content: str, mode: int, owner: str) -> subprocess.CompletedProcess[str]:
    command = write_command(str(target), mode, owner, digest(content))
    return subprocess.run(["sh", "-c", command], input=content, text=True, capture_output=True, check=False)


@pytest.fixture
def nobodys_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder a container user owns (the RabbitMQ data folder holding the Erlang cookie), in folders
    that user may traverse (pytest's own are root's 0700)."""
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    base = Path(tempfile.mkdtemp(prefix="keybuzz-owner-"))
    os.chmod(base, 0o755)
    folder = base / "data"
    folder.mkdir(mode=0o750)
    os.chown(folder, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(base)


def test_a_write_in_a_users_folder_runs_as_that_user(nobodys_folder: Path) -> None:
    target = nobodys_folder / ".erlang.cookie"
    done = run_write(target, "COOKIE\n", 0o400, f"{NOBODY}:{NOBODY}")
    assert done.returncode == 0, done.stderr
    info = target.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o400)
    assert [p.name for p in nobodys_folder.iterdir()] == [".erlang.cookie"]  # no temp file left
    # Proof of whose rights it used: a folder its owner may not write to stops the write (root could).
    os.chmod(nobodys_folder, 0o550)
    refused = run_write(target, "OTHER\n", 0o400, f"{NOBODY}:{NOBODY}")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    os.chmod(nobodys_folder, 0o750)


def test_a_link_planted_in_a_users_folder_never_lets_root_write_through_it(nobodys_folder: Path,
                                                                           tmp_path: Path) -> None:
    canary = tmp_path / "root-only"
    canary.write_text("root's\n")
    os.chmod(canary, 0o600)
    target = nobodys_folder / ".erlang.cookie"
    for planted in (f"{target}.keybuzz-tmp", str(target)):  # the old fixed temp name, and the target itself
        os.symlink(canary, planted)
        os.lchown(planted, NOBODY, NOBODY)
    done = run_write(target, "COOKIE\n", 0o400, f"{NOBODY}:{NOBODY}")
    assert done.returncode == 0, done.stderr
    assert canary.read_text() == "root's\n"
    assert canary.stat().st_uid == 0 and stat.S_IMODE(canary.stat().st_mode) == 0o600
    assert not target.is_symlink() and target.read_text() == "COOKIE\n"  # the link was replaced, not followed


def test_a_write_is_refused_where_owners_disagree_or_others_may_write(nobodys_folder: Path, tmp_path: Path) -> None:
    assert "its folder belongs to uid 65534" in run_write(nobodys_folder / "x", "x\n", 0o600, "root").stderr
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert "writable by others" in run_write(shared / "x", "x\n", 0o600, "root").stderr
    link = tmp_path / "link"
    link.symlink_to(nobodys_folder)
    refused = run_write(link / "x", "x\n", 0o600, f"{NOBODY}:{NOBODY}")
    assert "is a symbolic link, not a folder" in refused.stderr
    assert not (nobodys_folder / "x").exists() and not (shared / "x").exists()


def test_a_managed_folder_is_never_made_through_a_link_or_in_a_users_folder(nobodys_folder: Path,
                                                                            tmp_path: Path) -> None:
    from keybuzz.remote.actions import directory_command

    made = tmp_path / "conf"
    done = subprocess.run(["sh", "-c", directory_command(str(made), 0o750, f"{NOBODY}:{NOBODY}")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (made.stat().st_uid, stat.S_IMODE(made.stat().st_mode)) == (NOBODY, 0o750)
    under = subprocess.run(["sh", "-c", directory_command(str(nobodys_folder / "sub"), 0o755, "root")],
                           capture_output=True, text=True, check=False)
    assert under.returncode != 0 and "root's folders only" in under.stderr and not (nobodys_folder / "sub").exists()
    canary = tmp_path / "elsewhere"
    canary.mkdir(mode=0o700)
    (tmp_path / "linked").symlink_to(canary)
    linked = subprocess.run(["sh", "-c", directory_command(str(tmp_path / "linked"), 0o777, f"{NOBODY}")],
                            capture_output=True, text=True, check=False)
    assert linked.returncode != 0 and "symbolic link" in linked.stderr
    assert (canary.stat().st_uid, stat.S_IMODE(canary.stat().st_mode)) == (0, 0o700)


def test_a_marker_file_is_made_as_the_owner_of_its_folder(nobodys_folder: Path) -> None:
    from keybuzz.remote.actions import empty_file_argv

    done = subprocess.run(empty_file_argv(str(nobodys_folder / "force_load")), input="", text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (nobodys_folder / "force_load").stat().st_uid == NOBODY and (nobodys_folder / "force_load").read_text() == ""


def test_owner_matching_accepts_names_and_ids() -> None:
    assert owner_matches("postgres", "postgres:postgres", "100:102")
    assert owner_matches("100", "postgres:postgres", "100:102")
    assert owner_matches("100:102", "postgres:postgres", "100:102")
    assert not owner_matches("root", "postgres:postgres", "100:102")
    assert not owner_matches("postgres:root", "postgres:postgres", "100:102")


def test_probed_paths_include_watched_files_outside_the_plan() -> None:
    p = HostPlan("h", containers=[container(restart_on=("/etc/external.conf",), env_file="/etc/x.env")])
    assert probed_paths(p) == {"/etc/external.conf", "/etc/x.env"}


DEMO_DIRS = ("/opt/keybuzz/demo",)  # the demo module's folder under data_root and config_root


def removal_plan() -> HostPlan:
    return HostPlan("h", [DirSpec("/opt/keybuzz/demo"), DirSpec("/opt/keybuzz/demo/conf"),
                          DirSpec("/opt/keybuzz/demo/data", data=True)],
                    [FileSpec("/opt/keybuzz/demo/conf/a.conf", "x")], [container()])


def everything_present(p: HostPlan) -> HostState:
    paths = {d.path: PathState("directory", 0o755, "root:root", "0:0") for d in p.directories}
    paths.update({f.path: PathState("file", 0o644, "root:root", "0:0", f.sha256) for f in p.files})
    state = parse_probe("#C\nkeybuzz-demo\tUp\tio.keybuzz.module=demo\nkeybuzz-demo-old\tExited\t"
                        "io.keybuzz.module=demo\nforeign\tUp\tio.keybuzz.module=redis\n")
    state.paths = paths
    return state


def test_cleanup_keeps_data_and_its_parents_without_purge() -> None:
    p = removal_plan()
    actions = removal_actions(p, everything_present(p), PODMAN, "demo", purge_data=False, module_dirs=DEMO_DIRS)
    targets = [a.target for a in actions]
    assert targets == ["container keybuzz-demo", "container keybuzz-demo-old", "/opt/keybuzz/demo/conf/a.conf",
                       "/opt/keybuzz/demo/conf"]
    assert "foreign" not in " ".join(targets)


def test_cleanup_purge_removes_data_deepest_first() -> None:
    p = removal_plan()
    actions = removal_actions(p, everything_present(p), PODMAN, "demo", purge_data=True, module_dirs=DEMO_DIRS)
    folders = [a.target for a in actions if a.target.startswith("/opt") and a.summary != "delete file"]
    assert folders[-1] == "/opt/keybuzz/demo"
    assert set(folders) == {"/opt/keybuzz/demo", "/opt/keybuzz/demo/conf", "/opt/keybuzz/demo/data"}
    assert shlex.split(actions[-1].command) == ["rm", "-rf", "--", "/opt/keybuzz/demo"]


def test_cleanup_on_clean_host_does_nothing_and_refuses_top_level_folders() -> None:
    assert removal_actions(removal_plan(), HostState(), PODMAN, "demo", purge_data=True,
                           module_dirs=DEMO_DIRS) == []
    dangerous = HostPlan("h", [DirSpec("/opt")])
    state = HostState(paths={"/opt": PathState("directory", 0o755, "root:root", "0:0")})
    with pytest.raises(OperationFailed, match="refusing"):
        removal_actions(dangerous, state, PODMAN, "demo", purge_data=False, module_dirs=DEMO_DIRS)


def present(*paths: str, mounts: tuple[str, ...] = ()) -> HostState:
    state = parse_probe("#M\n" + "".join(f"{m}\n" for m in mounts)) if mounts else HostState()
    state.paths = {p: PathState("directory", 0o755, "root:root", "0:0") for p in paths}
    return state


@pytest.mark.parametrize("path", [
    "//demo",  # data_root "/" joined with the module's name: normpath keeps the two slashes
    "/opt/keybuzz/demo/../../../etc",  # normalises to /etc, two slashes
    "/opt/keybuzz/demo/../../../etc/ssh",  # normalises to /etc/ssh, two slashes: passed "at least two slashes"
    "/opt/keybuzz/demo/./conf",
    "/opt/keybuzz/demo//conf",
    "/opt/keybuzz/demo/conf/",
    "/opt/keybuzz/redis/data",  # another module's folder
    "/opt/keybuzz/demonic",  # a sibling that only starts like the module's folder
    "/opt/keybuzz",  # the root every module shares
    "/etc/keybuzz/redis",  # keybuzz's /etc folder of another module
])
def test_cleanup_removes_only_folders_of_the_modules_own_allow_list(path: str) -> None:
    p = HostPlan("h", [DirSpec(path, data=True)])
    for state in (present(path), present(path, mounts=(path,))):  # rm -rf, and find -delete of a volume
        with pytest.raises(OperationFailed, match="refusing to remove") as refused:
            removal_actions(p, state, PODMAN, "demo", purge_data=True, module_dirs=DEMO_DIRS)
        assert "/opt/keybuzz/demo" in str(refused.value) and "paths.data_root" in str(refused.value)


def test_cleanup_allow_list_takes_the_modules_folders_and_its_etc_folder_in_normal_form() -> None:
    inside = HostPlan("h", [DirSpec("/opt/keybuzz/demo"), DirSpec("/srv/conf/demo/x")])
    removed = removal_actions(inside, present("/opt/keybuzz/demo", "/srv/conf/demo/x"), PODMAN, "demo",
                              purge_data=True, module_dirs=(*DEMO_DIRS, "/srv/conf/demo"))
    assert [shlex.split(a.command) for a in removed] == [["rm", "-rf", "--", "/srv/conf/demo/x"],
                                                         ["rm", "-rf", "--", "/opt/keybuzz/demo"]]
    own_etc = HostPlan("h", [DirSpec("/etc/keybuzz/base_os")])
    assert [a.target for a in removal_actions(own_etc, present("/etc/keybuzz/base_os"), PODMAN, "base_os",
                                              purge_data=False, module_dirs=("/opt/keybuzz/base_os",))] == [
        "/etc/keybuzz/base_os"]
    # data_root "/": the module's folder `//demo` is no root at all, so nothing under it is removed either
    hostile_root = HostPlan("h", [DirSpec("//demo/data")])
    with pytest.raises(OperationFailed, match="refusing to remove '//demo/data'"):
        removal_actions(hostile_root, present("//demo/data"), PODMAN, "demo", purge_data=True,
                        module_dirs=("//demo",))


def test_probe_script_runs_under_sh_and_parses_real_stat_output(tmp_path: Path) -> None:
    (tmp_path / "a b.conf").write_text(CONTENT)
    (tmp_path / "a b.conf").chmod(0o640)
    paths = [str(tmp_path / "a b.conf"), str(tmp_path), str(tmp_path / "missing")]
    script = probe_script(paths, "false")  # a container CLI that fails: reported, not parsed as containers
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    state = parse_probe(out)
    conf = state.path(str(tmp_path / "a b.conf"))
    assert (conf.kind, conf.mode, conf.sha256) == ("file", 0o640, digest(CONTENT))
    assert state.path(str(tmp_path)).kind == "directory"
    assert not state.path(str(tmp_path / "missing")).present
    assert state.containers == {} and state.container_error.startswith("container listing failed")


def fake_cli(tmp_path: Path, listing: str, rc: int = 0) -> tuple[str, Path]:
    """An executable standing in for podman: prints `listing` for `ps -a --format` and counts its calls."""
    calls = tmp_path / "calls"
    cli = tmp_path / "fakecli"
    cli.write_text(f"#!/bin/sh\necho x >> {calls}\nprintf '%b' '{listing}'\nexit {rc}\n")
    cli.chmod(0o755)
    return str(cli), calls


def run_probe(script: str) -> HostState:
    return parse_probe(subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout)


def test_container_listing_is_cached_until_the_engine_state_changes(tmp_path: Path) -> None:
    cli, calls = fake_cli(tmp_path, "demo\\tUp 2 seconds\\tio.keybuzz.spec-hash=abc,io.keybuzz.module=demo\\n")
    state_file = tmp_path / "bolt_state.db"
    state_file.write_text("1")
    script = probe_script([], cli, state_files=(str(state_file),), cache_dir=str(tmp_path / "cache"))
    first = run_probe(script)
    assert first.containers["demo"].spec_hash == "abc" and first.containers["demo"].running
    second = run_probe(script)
    assert second.containers == first.containers
    assert calls.read_text().count("x") == 1  # the second probe did not start the CLI
    state_file.write_text("22")  # a container changed state: the engine rewrote its database
    assert run_probe(script).containers == first.containers
    assert calls.read_text().count("x") == 2
    uncached = probe_script([], cli, state_files=(), cache_dir=str(tmp_path / "cache2"))
    run_probe(uncached)
    run_probe(uncached)
    assert calls.read_text().count("x") == 4  # no state file known: always ask the CLI


def test_failing_container_cli_is_reported_and_never_cached(tmp_path: Path) -> None:
    cli, calls = fake_cli(tmp_path, "Error: cannot open database\\n", rc=125)
    state_file = tmp_path / "bolt_state.db"
    state_file.write_text("1")
    script = probe_script([], cli, state_files=(str(state_file),), cache_dir=str(tmp_path / "cache"))
    for _ in range(2):
        state = run_probe(script)
        assert state.containers == {} and "cannot open database" in state.container_error
    assert not (tmp_path / "cache" / "fakecli-ps.cache").exists()
    assert calls.read_text().count("x") == 4  # asked every time: listing, then the error message


def test_cleanup_refuses_when_the_container_list_could_not_be_read() -> None:
    p = removal_plan()
    state = everything_present(p)
    state.container_error = "container listing failed: permission denied"
    with pytest.raises(OperationFailed, match="ps` failed"):
        removal_actions(p, state, PODMAN, "demo", purge_data=False, module_dirs=DEMO_DIRS)


def host_service(**changes: object) -> HostService:
    base: dict[str, object] = dict(name="k3s", module="k3s", binary="/usr/local/bin/k3s", source="/srv/cache/k3s",
                                   sha256="a" * 64, unit="[Service]\nExecStart=/usr/local/bin/k3s server\n",
                                   restart_on=("/etc/rancher/k3s/config.yaml",))
    base.update(changes)
    return HostService(**base)  # type: ignore[arg-type]


def service_state(spec: HostService, active: str = "active", config_hash: str = "c1") -> HostState:
    """A host where the service is installed as rendered (binary, unit with its hash) and `active`."""
    unit = services.unit_file(spec, {"/etc/rancher/k3s/config.yaml": config_hash})
    return HostState(paths={spec.binary: PathState("file", 0o755, "root:root", "0:0", spec.sha256),
                            unit.path: PathState("file", 0o644, "root:root", "0:0", unit.sha256),
                            "/etc/rancher/k3s/config.yaml": PathState("file", 0o600, "root:root", "0:0", config_hash)},
                     services={spec.name: active})


def test_host_service_first_install_uploads_the_checked_binary_writes_the_unit_and_restarts() -> None:
    spec = host_service()
    actions = plan_actions(HostPlan("m1", services=[spec]), HostState(), PODMAN)
    assert [(a.kind, a.target) for a in actions] == [("binary", "/usr/local/bin/k3s"),
                                                   ("file", "/etc/systemd/system/k3s.service"),
                                                   ("service", "k3s")]
    binary = actions[0]
    assert (binary.upload, binary.upload_sha256) == ("/srv/cache/k3s", "a" * 64)
    words = shlex.split(binary.command)
    assert f"{'a' * 64}  /usr/local/bin/k3s.keybuzz-tmp" in words and "0755" in words
    assert actions[1].stdin and "ExecStart=/usr/local/bin/k3s server" in actions[1].stdin
    assert [shlex.split(part) for part in actions[2].command.split(" && ")] == [
        ["systemctl", "daemon-reload"], ["systemctl", "enable", "k3s.service"], ["systemctl", "restart", "k3s.service"]]
    assert actions[2].restarts == 1


def test_host_service_rerun_is_a_no_op_and_a_stopped_one_is_started() -> None:
    spec = host_service()
    assert plan_actions(HostPlan("m1", services=[spec]), service_state(spec), PODMAN) == []
    started = plan_actions(HostPlan("m1", services=[spec]), service_state(spec, active="failed"), PODMAN)
    assert [(a.kind, shlex.split(a.command)) for a in started] == [("service", ["systemctl", "start", "k3s.service"])]


def test_host_service_restarts_when_its_binary_or_watched_config_changes() -> None:
    spec = host_service()
    new_binary = plan_actions(HostPlan("m1", services=[host_service(sha256="b" * 64)]), service_state(spec), PODMAN)
    assert [a.kind for a in new_binary] == ["binary", "file", "service"]  # the unit's hash covers the binary
    config = FileSpec("/etc/rancher/k3s/config.yaml", "token-file: /x\n", secret=True)
    new_config = plan_actions(HostPlan("m1", files=[config], services=[spec]), service_state(spec), PODMAN)
    assert [a.kind for a in new_config] == ["file", "file", "service"]


def test_a_source_binary_with_another_checksum_is_refused(tmp_path: Path) -> None:
    from keybuzz.remote.converge import _checked_source

    source = tmp_path / "k3s"
    source.write_bytes(b"not the pinned binary")
    action = plan_actions(HostPlan("m1", services=[host_service(source=str(source))]), HostState(), PODMAN)[0]
    with pytest.raises(OperationFailed, match=r"has sha256 [0-9a-f]{64}, pinned a{64}: refusing to install"):
        _checked_source(action)


def test_probe_reports_service_states() -> None:
    script = probe_script([], None, services=["k3s"])
    assert "systemctl is-active k3s.service" in script
    state = parse_probe("#U\nk3s\tactive\n#U\nagent\t\n")
    assert state.services == {"k3s": "active", "agent": "unknown"}
