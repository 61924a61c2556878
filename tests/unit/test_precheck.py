"""The pre-checks' decisions, on captured output of the one command they run per host."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from keybuzz.engine import resume_command
from keybuzz.engine.precheck import (
    base_os_problem,
    facts_script,
    host_problems,
    listening_ports,
    parse_facts,
    split_module_output,
)
from keybuzz.registry import module_by_name

# Captured on a lab host (trimmed): sshd on 22 (0x16), a Sentinel on 26379 (0x670B), one established connection.
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 7B004E0A:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1061 1 0 100 0 0 10 0
   1: 7B004E0A:670B 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 2061 1 0 100 0 0 10 0
   2: 7B004E0A:96A6 79004E0A:18EB 01 00000000:00000000 03:000001C6 00000000     0        0 0 3 0
"""
FACTS = f"""#C
redis-sentinel\tExited\tmap[io.keybuzz.module:redis io.keybuzz.spec-hash:ab]
#KB-cli
/usr/bin/podman
#KB-df
/dev/vda         264212084 24119752  82271160      23% /
#KB-tcp
{TCP}#KB-clock
1796112000.250000000
"""
REDIS = module_by_name("redis")
PORTS = [(REDIS, 6379, "Redis"), (REDIS, 26379, "Redis Sentinel")]


def problems(text: str = FACTS, skew: float | None = 0.1, ports=PORTS, cli: str | None = "podman") -> list[str]:
    found = host_problems("redis-01", "10.0.0.123", parse_facts(text), cli=cli, data_root="/opt/keybuzz",
                          ports=ports, skew=skew)
    return [p.what for p in found]


def test_listening_ports_and_modules_running_here() -> None:
    assert listening_ports(TCP.splitlines()) == {22, 26379}  # the established one is not listening
    assert parse_facts(FACTS)["ours"] == []  # an exited container does not make the port its own
    running = FACTS.replace("\tExited\t", "\tUp\t")
    assert parse_facts(running)["ours"] == ["redis"]


def test_a_foreign_listener_on_a_module_port_is_named_but_the_module_own_is_not() -> None:
    assert problems() == ["port 26379 (Redis Sentinel, module redis) is taken by another process"]
    ours = FACTS.replace("\tExited\t", "\tUp\t")
    assert problems(ours) == []  # a re-run: the module's own containers listen there


def test_a_host_without_containers_needs_no_container_cli() -> None:
    no_cli = FACTS.replace("/usr/bin/podman", "missing")
    assert "container CLI `podman` not found" in problems(no_cli, ports=[])
    assert problems(no_cli, ports=[], cli=None) == []  # base_os alone installs the runtime there


def test_missing_cli_full_disk_and_clock_skew_are_each_reported() -> None:
    broken = FACTS.replace("/usr/bin/podman", "missing").replace("82271160", "102400")
    assert problems(broken, skew=-7.5, ports=[]) == [
        "container CLI `podman` not found", "100 MB free under /opt/keybuzz, at least 1024 MB needed",
        "clock -7.5 s off this machine's"]


def test_the_facts_command_is_read_only_and_walks_up_to_an_existing_folder() -> None:
    script = facts_script("/opt/keybuzz", "podman")
    assert "while [ ! -d" in script and "df -Pk" in script and "/proc/net/tcp" in script
    assert "podman ps -a" in script and "ps.cache" in script  # the engine's cached container listing
    for verb in ("rm ", "chmod", "chown", "podman run", "podman rm"):
        assert verb not in script


def test_each_module_script_runs_in_the_same_command_and_its_output_comes_back_as_printed(tmp_path: Path) -> None:
    """Run by a real sh: a module script that exits, prints blank lines or leaves its last line open
    neither ends the pre-check's command nor loses a byte of what it printed."""
    scripts = {"first": "printf 'a\\n\\n  b\\n'; exit 3", "second": "printf 'no newline'", "third": "true"}
    script = facts_script(str(tmp_path / "data"), "no-such-cli", scripts)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    own, outputs = split_module_output(out)
    assert outputs == {"first": "a\n\n  b\n", "second": "no newline", "third": ""}
    facts = parse_facts(own)
    assert facts["cli"] == ["missing"] and facts["base_os"] in (["loaded"], ["missing"]) and facts["clock"]


def test_a_host_without_base_os_firewall_is_named_with_the_command_that_installs_it() -> None:
    command = "keybuzz install --site /srv/site --only base_os"
    assert base_os_problem("redis-01", "10.0.0.123", parse_facts(FACTS + "#KB-base_os\nloaded\n"), command) is None
    for facts in (FACTS + "#KB-base_os\nmissing\n", FACTS):  # not loaded; an older answer without the section
        problem = base_os_problem("redis-01", "10.0.0.123", parse_facts(facts), command)
        assert problem is not None and problem.missing_base_os
        assert "base_os is not installed" in problem.what and "inet keybuzz_base_os" in problem.what
        assert f"`{command}`" in problem.fix and "--allow-missing-base-os" in problem.fix
    assert "nft list table inet keybuzz_base_os >/dev/null" in facts_script("/opt/keybuzz", "podman")


def test_the_override_is_kept_by_the_resume_command(tmp_path: Path) -> None:
    argv = shlex.split(resume_command(tmp_path, REDIS, None, False, allow_missing_base_os=True))
    assert argv[-3:] == ["--start-from-module", "4", "--allow-missing-base-os"]
    assert "--allow-missing-base-os" not in resume_command(tmp_path, REDIS, None, False)
