"""The base OS module's decisions on captured facts: the lock-out refusal, the probe matrix (planned,
then run for real against local sockets), the live table compared with the rendered one, the facts
parser, and the lint rules with their `file:line`."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from keybuzz.containers import ContainerSpec
from keybuzz.contract import LintInput
from keybuzz.lint import lint
from keybuzz.modules.base_os import facts, layout, lockout, probes
from keybuzz.modules.base_os.firewall import live_problems, parse_live
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.registry import load_site, module_by_name
from keybuzz.render import HostPlan
from keybuzz.site import Site

MODULE = module_by_name("base_os")


def edit(seed_site: Path, change) -> Site:  # type: ignore[no-untyped-def]
    path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(path.read_text())
    change(config["base_os"])
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_site(seed_site)


def seen(installer: str, server: str, user: str = "root", groups: str = "root") -> facts.Facts:
    return facts.Facts(installer_ip=installer, server_ip=server, user=user, groups=groups.split())


# -- lock-out ---------------------------------------------------------------------------------------

def test_the_installer_from_the_install_server_may_go_on(site: Site) -> None:
    fw = MODULE.firewalls(site)["db-master-01"]
    assert lockout.host_problems(site, site.settings(BaseOsSettings), fw, seen("10.0.0.250", "10.0.0.120")) == []


def test_an_installer_address_the_firewall_would_drop_is_refused_with_the_fix(site: Site) -> None:
    fw = MODULE.firewalls(site)["db-master-01"]
    problems = lockout.host_problems(site, site.settings(BaseOsSettings), fw, seen("10.0.9.9", "10.0.0.120"))
    assert len(problems) == 1 and "drop the installer's SSH from 10.0.9.9" in problems[0]
    assert "base_os.installer" in problems[0]


def test_keybuzz_on_the_server_itself_arrives_on_lo(site: Site) -> None:
    fw = MODULE.firewalls(site)["install-01"]
    assert lockout.host_problems(site, site.settings(BaseOsSettings), fw, seen("10.0.0.250", "10.0.0.250")) == []


def test_allow_users_without_the_installer_user_is_refused(seed_site: Path) -> None:
    site = edit(seed_site, lambda b: b["ssh"].update(allow_users=["deploy"]))
    fw = MODULE.firewalls(site)["db-master-01"]
    problems = lockout.host_problems(site, site.settings(BaseOsSettings), fw, seen("10.0.0.250", "10.0.0.120"))
    assert problems and "AllowUsers deploy does not let root@10.0.0.250 in" in problems[0]


def test_the_operators_own_session_must_come_back(seed_site: Path) -> None:
    site = load_site(seed_site)
    fws = MODULE.firewalls(site)
    session = "198.51.100.7 50022 91.98.128.153 22"  # an SSH session to install-01's public address
    [(host, problem)] = lockout.operator_problems(site, fws, session)
    assert host == "install-01" and "198.51.100.7" in problem and "admin_networks" in problem
    site = edit(seed_site, lambda b: b["ssh"].update(admin_networks=["198.51.100.0/24"]))
    assert lockout.operator_problems(site, MODULE.firewalls(site), session) == []
    assert lockout.operator_problems(site, fws, "") == []  # not inside an SSH session


# -- the probe matrix -------------------------------------------------------------------------------

def test_after_an_install_the_matrix_tries_only_the_changed_servers_and_the_balancers_before_them(
        site: Site) -> None:
    planned = probes.plan(site, MODULE.firewalls(site), {s.hostname: "10.0.0.250" for s in site.servers})
    toward = probes.toward(site, planned, {"maria-01"})
    assert toward and {p.target for p in toward} == {"maria-01"}  # no proxysql server changed: lb-mariadb left out
    toward = probes.toward(site, planned, {"haproxy-01"})
    assert {p.target for p in toward} == {"haproxy-01", "lb-internal"}
    assert probes.toward(site, planned, set()) == []


def test_the_matrix_tries_every_role_against_every_port(site: Site) -> None:
    fws = MODULE.firewalls(site)
    planned = probes.plan(site, fws, {s.hostname: "10.0.0.250" for s in site.servers})
    pg = [p for p in planned if p.target == "db-master-01" and p.port == 5432]
    assert {p.source_role for p in pg if p.expect == "reach"} == {"haproxy", "db", "install"}
    assert {"app", "redis", "queue", "k3s-worker", "monitor"} <= {p.source_role for p in pg if p.expect == "blocked"}
    assert all(p.source != "db-master-01" for p in pg)  # never from the target itself
    metrics = [p for p in planned if p.target == "queue-01" and p.port == 15692]
    assert {p.source_role for p in metrics if p.expect == "reach"} == {"monitor"}
    assert [p.expect for p in metrics if p.source == probes.INSTALLER] == ["blocked"]
    through = [p for p in planned if p.expect == "through"]
    assert {(p.target, p.port) for p in through} >= {("lb-internal", 5432), ("lb-mariadb", 3306)}
    assert all(p.source_role in probes.CLIENT_ROLES for p in through)


def test_outcomes_pass_or_fail_as_the_firewall_should_answer() -> None:
    reach = probes.Probe("a", "haproxy", "db", "10.0.0.120", 5432, "reach", "x")
    blocked = probes.Probe("b", "app", "db", "10.0.0.120", 5432, "blocked", "x")
    assert probes.Outcome(reach, "refused").ok and probes.Outcome(reach, "open").ok  # the kernel answered
    assert not probes.Outcome(reach, "timeout").ok
    assert probes.Outcome(blocked, "timeout").ok and not probes.Outcome(blocked, "refused").ok


@pytest.fixture
def servers() -> Iterator[tuple[int, int, int]]:
    """A listener that stays silent, one that closes at once, and a port with no listener (all 127.0.0.1)."""
    silent, closing = socket.socket(), socket.socket()
    held: list[socket.socket] = []
    for sock in (silent, closing):
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()

    def serve(sock: socket.socket, close: bool) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            if close:
                conn.close()
            else:
                held.append(conn)

    for sock, close in ((silent, False), (closing, True)):
        threading.Thread(target=serve, args=(sock, close), daemon=True).start()
    yield silent.getsockname()[1], closing.getsockname()[1], free_port
    for sock in (silent, closing, *held):
        sock.close()


def test_the_probe_program_tells_open_refused_held_and_closed(servers: tuple[int, int, int]) -> None:
    silent, closing, free = servers
    planned = [probes.Probe("x", "r", "t", "127.0.0.1", silent, "reach", "l"),
               probes.Probe("x", "r", "t", "127.0.0.1", free, "reach", "l"),
               probes.Probe("x", "r", "t", "127.0.0.1", silent, "through", "l"),
               probes.Probe("x", "r", "t", "127.0.0.1", closing, "through", "l")]
    done = subprocess.run(probes.argv(sys.executable), input=probes.stdin(planned), capture_output=True, text=True,
                          timeout=30, check=True)
    assert [o.result for o in probes.parse(planned, done.stdout)] == ["open", "refused", "held", "closed"]


# -- the live table ---------------------------------------------------------------------------------

CAPTURED_RULES = [  # two rules as `nft -j list table inet keybuzz_base_os` shows them on a lab host
    {"rule": {"chain": "input", "comment": "Erlang port mapper (rabbitmq) from role queue", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 4369}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@role_queue"}},
        {"accept": None}]}},
    {"rule": {"chain": "input", "expr": [
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
        {"accept": None}]}},
]


def live_document(fw, rules: list[dict], policy: str = "drop") -> dict:  # type: ignore[no-untyped-def]
    items: list[dict] = [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": layout.TABLE}}]
    items += [{"set": {"name": s.name, "type": "ipv4_addr", "elem": list(s.addresses)}} for s in fw.sets]
    items.append({"chain": {"name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": policy}})
    return {"nftables": items + rules}


def test_the_live_table_is_compared_rule_by_rule(site: Site) -> None:
    fw = MODULE.firewalls(site)["queue-01"]
    rules = [{"rule": {"chain": "input", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": a.protocol, "field": "dport"}}, "right": a.port}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": f"@{a.source.name}"}},
        {"accept": None}]}} for a in fw.allows]
    assert live_problems(fw, parse_live(live_document(fw, [*rules, CAPTURED_RULES[1]]))) == []
    assert live_problems(fw, parse_live({"nftables": []})) == [f"no table inet {layout.TABLE}"]
    problems = live_problems(fw, parse_live(live_document(fw, rules[1:], policy="accept")))
    assert problems[0].startswith("input chain hook input policy accept")
    assert any(p.startswith("missing tcp/") for p in problems)
    extra = {"rule": {"chain": "input", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 5432}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@role_app"}},
        {"accept": None}]}}
    assert live_problems(fw, parse_live(live_document(fw, [*rules, extra]))) == ["extra tcp/5432 from @role_app"]
    assert ("tcp", 4369, "role_queue") in parse_live({"nftables": CAPTURED_RULES}).allows


# -- facts ------------------------------------------------------------------------------------------

def test_the_facts_script_is_read_only_and_parsed_back() -> None:
    text = facts.script([layout.SSHD_DROPIN], ["net.core.somaxconn"], "true")
    for verb in ("nft -f", "nft add", "nft delete", "sysctl -w", "rm ", "systemctl restart", "> /etc"):
        assert verb not in text
    main = base64.b64encode(b"ListenAddress 10.89.0.126\n").decode()
    output = "\n".join([
        "#S", f"S\t{layout.SSHD_DROPIN}\tregular file\t644\troot:root\t0:0", "#H", f"abc123  {layout.SSHD_DROPIN}",
        "#KB-ssh", "10.89.0.1 40022 10.89.0.126 22", "#KB-user", "root", "root", "#KB-systemd", "no",
        "#KB-nft", "present", f"{layout.HASH_MARK}678debcfa448cc89",
        "#KB-sysctl", "net.core.somaxconn = 4096", "net.ipv4.tcp_rmem = 4096\t131072\t33554432",
        "#KB-swaps", "#KB-sshd", "passwordauthentication no", "allowusers root",
        "#KB-files", f"{layout.SSHD_CONFIG}\t{main}", f"{layout.SSHD_DROPIN}\t-",
        "#KB-packages", "podman 4.3.1+ds1-8+deb12u1+b3", "#KB-ntp", "#KB-clock", "1760000000.25",
        "#KB-ruleset", json.dumps({"nftables": CAPTURED_RULES}), "#KB-resolv", "nameserver 1.1.1.1", "#KB-units", "",
    ])
    got = facts.parse(output)
    assert (got.installer_ip, got.server_ip, got.user, got.systemd, got.nft) == \
        ("10.89.0.1", "10.89.0.126", "root", False, True)
    assert got.table_hash == "678debcfa448cc89" and got.swaps == []
    assert got.sysctls == {"net.core.somaxconn": "4096", "net.ipv4.tcp_rmem": "4096 131072 33554432"}
    assert got.effective["allowusers"] == ["root"]
    assert got.files == {layout.SSHD_CONFIG: "ListenAddress 10.89.0.126\n", layout.SSHD_DROPIN: None}
    assert got.packages == {"podman": "4.3.1+ds1-8+deb12u1+b3"} and got.clock == 1760000000.25
    assert got.paths.path(layout.SSHD_DROPIN).sha256 == "abc123"
    assert parse_live(got.ruleset).allows == {("tcp", 4369, "role_queue")}


# -- lint -------------------------------------------------------------------------------------------

def by_rule(site: Site) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in lint(site):
        out.setdefault(finding.rule, []).append(finding)
    return out


def test_the_seed_site_has_no_base_os_error(site: Site) -> None:
    found = by_rule(site)
    assert not any(found.get(rule) for rule in ("KB020", "KB021", "KB022", "KB023"))
    [public] = found["KB024"]  # install-01 has a public address and no admin network yet
    assert public.severity == "info" and public.where.startswith("servers.tsv:") and "91.98.128.153" in public.message


def test_an_open_port_without_reachability_and_unknown_roles_point_at_their_line(seed_site: Path) -> None:
    site = edit(seed_site, lambda b: b["firewall"].update(open=[
        {"port": 9100, "role": "app", "allow_from": []},
        {"port": 9200, "role": "k3s-worker", "allow_from": ["monitr", "maria"]},
    ]))
    lines = (seed_site / "keybuzz.yaml").read_text().splitlines()
    found = by_rule(site)
    [empty] = found["KB020"]
    assert empty.severity == "error" and "tcp/9100 on role app" in empty.message
    line = int(empty.where.split(":")[1])
    assert lines[line - 1].strip().startswith("- port: 9100")
    messages = {f.message for f in found["KB021"]}
    assert any("'monitr' is not a role" in m for m in messages)
    assert not any("allows 'maria'" in m for m in messages)  # the seed has maria servers
    where = next(f.where for f in found["KB021"] if "monitr" in f.message)
    assert lines[int(where.split(":")[1]) - 1].strip() == "- monitr"


def test_a_role_no_server_has_is_an_error(seed_site: Path, kb) -> None:
    kb.write_servers(seed_site, kb.small_rows())
    site = edit(seed_site, lambda b: (b.update(installer=["10.0.0.250"]), b["ssh"].update(from_roles=["monitor"])))
    [finding] = by_rule(site)["KB021"]
    assert "no server in servers.tsv has role monitor" in finding.message and finding.where.startswith("keybuzz.yaml:")


def test_an_installer_missing_from_servers_tsv_is_an_error(seed_site: Path, kb) -> None:
    site = edit(seed_site, lambda b: b.update(installer=["bastion-01"]))
    [finding] = by_rule(site)["KB022"]
    assert "'bastion-01' is missing from servers.tsv" in finding.message
    kb.write_servers(seed_site, kb.small_rows())  # no install server at all, no installer listed
    site = edit(seed_site, lambda b: b.update(installer=[]))
    [nobody] = by_rule(site)["KB022"]
    assert nobody.where == "servers.tsv:1" and "no address may open SSH" in nobody.message


def test_a_container_off_the_host_network_is_an_error(site: Site) -> None:
    rule = next(r for r in MODULE.lint_rules if r.id == "KB023")
    spec = ContainerSpec("bridged", "haproxy:2.8.5", "crafted", network_host=False)
    hits = list(rule.check(LintInput(site, {"haproxy-01": HostPlan("haproxy-01", containers=[spec])}, [])))
    assert hits and "NATed and forwarded past the input firewall" in hits[0][1]


def test_probes_run_concurrently_within_their_bounds(servers: tuple[int, int, int]) -> None:
    silent, _, free = servers
    planned = [probes.Probe("x", "r", "t", "127.0.0.1", silent if i % 2 else free, "reach", "l") for i in range(40)]

    async def go() -> list[probes.Outcome]:
        proc = await asyncio.create_subprocess_exec(*probes.argv(sys.executable), stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(probes.stdin(planned).encode())
        return probes.parse(planned, out.decode())

    outcomes = asyncio.run(go())
    assert [o.result for o in outcomes] == ["refused" if i % 2 == 0 else "open" for i in range(40)]
