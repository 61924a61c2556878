"""ContainerSpec -> argv (parsed, not string-compared), the spec hash, and no secret in any argv."""

from __future__ import annotations

import shlex

from keybuzz.containers import MODULE_LABEL, SPEC_HASH_LABEL, ContainerCli, ContainerSpec, HealthCheck, Mount
from keybuzz.remote.actions import plan_actions
from keybuzz.remote.probe import HostState
from keybuzz.render import DirSpec, FileSpec, HostPlan

SECRET = "Zq8wL0vS3cretValue91"
ENV = "/opt/keybuzz/demo/demo.env"
CONF = "/opt/keybuzz/demo/demo.conf"

PODMAN = ContainerCli("podman")


def spec(**changes: object) -> ContainerSpec:
    base: dict[str, object] = dict(name="keybuzz-demo", image="localhost/base:1", module="demo",
                                   command=("sleep", "infinity"), env_file=ENV,
                                   mounts=(Mount(CONF, "/etc/demo.conf", read_only=True),), restart_on=(CONF,))
    base.update(changes)
    return ContainerSpec(**base)  # type: ignore[arg-type]


def flags(argv: list[str]) -> dict[str, list[str]]:
    """Option -> values, for the options that take a value in our argv."""
    takes_value = {"--name", "--restart", "--network", "--user", "--env-file", "-v", "--ulimit", "--label",
                   "--entrypoint", "--stop-timeout", "--tmpfs", "--cap-add", "--health-cmd", "--health-interval",
                   "--health-timeout", "--health-retries"}
    out: dict[str, list[str]] = {}
    index = 2
    while index < len(argv) and argv[index].startswith("-"):
        option = argv[index]
        if option in takes_value:
            out.setdefault(option, []).append(argv[index + 1])
            index += 2
        else:
            out.setdefault(option, []).append("")
            index += 1
    out["<image>"] = [argv[index]]
    out["<command>"] = argv[index + 1:]
    return out


def test_run_argv_options_parse_back_to_the_spec() -> None:
    argv = PODMAN.run(spec(user="postgres", ulimits=(("nofile", "20000:20000"), ("nproc", "32768:32768"))), "abc123")
    assert argv[:2] == ["podman", "run"]
    parsed = flags(argv)
    assert parsed["--name"] == ["keybuzz-demo"]
    assert parsed["--restart"] == ["unless-stopped"]
    assert parsed["--network"] == ["host"]
    assert parsed["--user"] == ["postgres"]
    assert parsed["--env-file"] == [ENV]
    assert parsed["-v"] == [f"{CONF}:/etc/demo.conf:ro"]
    assert dict(u.split("=", 1) for u in parsed["--ulimit"]) == {"nofile": "20000:20000", "nproc": "32768:32768"}
    labels = dict(label.split("=", 1) for label in parsed["--label"])
    assert labels == {MODULE_LABEL: "demo", SPEC_HASH_LABEL: "abc123"}
    assert parsed["<image>"] == ["localhost/base:1"]
    assert parsed["<command>"] == ["sleep", "infinity"]


def test_docker_argv_and_default_ulimits_left_to_the_engine() -> None:
    parsed = flags(ContainerCli("docker").run(spec(network_host=False), "h"))
    assert "--ulimit" not in parsed and "--network" not in parsed


def test_spec_hash_covers_image_args_env_file_and_watched_files() -> None:
    files = {ENV: "e1", CONF: "c1", "/etc/unrelated": "u1"}
    reference = spec().spec_hash(files)
    assert spec().spec_hash(dict(files)) == reference  # stable
    assert spec().spec_hash({**files, "/etc/unrelated": "u2"}) == reference  # unwatched file: no effect
    assert spec().spec_hash({**files, ENV: "e2"}) != reference  # env-file content
    assert spec().spec_hash({**files, CONF: "c2"}) != reference  # restart_on file content
    assert spec(image="localhost/base:2").spec_hash(files) != reference
    assert spec(command=("sleep", "1")).spec_hash(files) != reference
    assert spec(mounts=()).spec_hash(files) != reference


def test_no_secret_value_in_any_argv_or_command() -> None:
    """Secrets reach the container through the 0600 env file, written from stdin."""
    plan = HostPlan("demo-1", [DirSpec("/opt/keybuzz/demo")],
                    [FileSpec(ENV, f"DEMO_PASSWORD={SECRET}\n", secret=True), FileSpec(CONF, "message=hi\n")],
                    [spec()])
    actions = plan_actions(plan, HostState(), PODMAN)
    assert [a.kind for a in actions] == ["directory", "file", "file", "container"]
    for action in actions:
        assert SECRET not in action.command
        for word in shlex.split(action.command):
            assert SECRET not in word
    container = actions[-1]
    words = shlex.split(container.command)
    assert "--env-file" in words and "-e" not in words and "--env" not in words
    env_write = next(a for a in actions if a.target == ENV)
    assert env_write.stdin is not None and SECRET in env_write.stdin
    assert plan.file(ENV).mode == 0o600


def test_fields_added_later_keep_the_hash_running_containers_carry() -> None:
    """The hash an earlier keybuzz put on a running container (computed with that version's code):
    an upgrade must not recreate every container of a site."""
    assert spec().spec_hash({ENV: "e1", CONF: "c1"}) == "5c570f17943f90dd"
    assert spec(cap_add=("NET_ADMIN",)).spec_hash({ENV: "e1", CONF: "c1"}) != "5c570f17943f90dd"
    assert spec(extra_hosts=(("queue-01", "10.0.0.126"),)).spec_hash({ENV: "e1", CONF: "c1"}) != "5c570f17943f90dd"


def test_hostname_and_extra_hosts_become_run_flags() -> None:
    argv = PODMAN.run(spec(hostname="queue-01", extra_hosts=(("queue-01", "10.0.0.126"), ("queue-02", "10.0.0.127"))),
                      "h")
    assert argv[argv.index("--hostname") + 1] == "queue-01"
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--add-host"] == [
        "queue-01:10.0.0.126", "queue-02:10.0.0.127"]
    assert argv.index("--add-host") < argv.index(spec().image)  # flags before the image


def test_capabilities_tmpfs_stop_timeout_and_health_reach_the_argv() -> None:
    health = HealthCheck(("redis-cli", "ping"), interval_s=2, timeout_s=1, retries=5)
    argv = PODMAN.run(spec(cap_add=("NET_ADMIN", "SYS_NICE"), privileged=True, tmpfs=("/run", "/tmp"),
                           stop_timeout_s=90, health=health), "h")
    parsed = flags(argv)
    assert parsed["--cap-add"] == ["NET_ADMIN", "SYS_NICE"] and "--privileged" in parsed
    assert parsed["--tmpfs"] == ["/run", "/tmp"] and parsed["--stop-timeout"] == ["90"]
    assert shlex.split(parsed["--health-cmd"][0]) == ["redis-cli", "ping"]
    assert (parsed["--health-interval"], parsed["--health-timeout"], parsed["--health-retries"]) == (
        ["2s"], ["1s"], ["5"])
    assert parsed["<image>"] == ["localhost/base:1"]


def test_every_cli_command_is_argv_data() -> None:
    assert PODMAN.exec("patroni", ["psql", "-c", "select 1"], user="postgres", stdin=True) == [
        "podman", "exec", "-i", "--user", "postgres", "patroni", "psql", "-c", "select 1"]
    assert PODMAN.stop("a", "b", timeout_s=5) == ["podman", "stop", "-t", "5", "a", "b"]
    assert PODMAN.user_ids("img:1", "redis")[-4:] == ["-c", 'id -u -- "$1"; id -g -- "$1"', "keybuzz-ids", "redis"]
    assert PODMAN.list_module("redis")[3:5] == ["--filter", f"label={MODULE_LABEL}=redis"]
    assert ContainerCli("docker").label("c", SPEC_HASH_LABEL) == [
        "docker", "inspect", "--format", f'{{{{index .Config.Labels "{SPEC_HASH_LABEL}"}}}}', "c"]
