"""The base OS module's rendered files, parsed back: the nftables ruleset (sets, hook, policy, every
accept rule against the modules' port declarations), the sshd drop-in and the Include edit, the
sysctl files (per-namespace keys only in the net file), resolv.conf, the runtime's apt pin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from keybuzz.contract import LOAD_BALANCER
from keybuzz.modules.base_os import firewall, layout, runtime, sshd, sysctl
from keybuzz.modules.base_os.render import local_part
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.registry import host_ports, load_site, module_by_name
from keybuzz.render import Plans
from keybuzz.site import Site

MODULE = module_by_name("base_os")
HAPROXY_IPS = {"10.0.0.11", "10.0.0.12"}
DB_IPS = {"10.0.0.120", "10.0.0.121", "10.0.0.122"}
INSTALLER_IP = "10.0.0.250"


@pytest.fixture
def plans(site: Site) -> Plans:
    return MODULE.render(site)


def content(plans: Plans, host: str, path: str) -> str:
    text = plans[host].file(path).content
    assert isinstance(text, str)
    return text


def parse_ruleset(text: str) -> dict:
    """The `nft -f` file as data: its statements before the table, the table's comment, sets (name ->
    elements), the input chain's hook line and its rules (protocol, port, source set)."""
    head = [line for line in text.splitlines() if line and not line.startswith("#")][:3]
    sets = {name: {e.strip() for e in elements.split(",")}
            for name, elements in re.findall(r"set (\w+) \{[^}]*?elements = \{ ([^}]*) \}", text)}
    chain = re.search(r"chain input \{\n\t\t(type [^\n]*)\n(.*?)\n\t\}", text, re.S)
    assert chain, text
    rules = [tuple(m) for m in re.findall(r"^\t\t(tcp|udp) dport (\d+) ip saddr @(\w+) accept", chain[2], re.M)]
    return {"head": head, "comment": re.search(r'comment "([^"]+)"', text)[1], "sets": sets, "hook": chain[1],
            "rules": [(p, int(port), s) for p, port, s in rules], "body": chain[2]}


def test_every_server_gets_its_firewall_and_hardening(plans: Plans, site: Site) -> None:
    assert set(plans) == {s.hostname for s in site.servers}  # every server, whatever its role
    for plan in plans.values():
        paths = {f.path for f in plan.files}
        assert {layout.FIREWALL_FILE, layout.SSHD_DROPIN, layout.SYSCTL_NET, layout.RESOLV_CONF,
                layout.JOURNALD_DROPIN} <= paths
        assert plan.containers == [] and plan.file(layout.FIREWALL_FILE).mode == 0o600


def test_the_table_is_replaced_alone_and_atomically(plans: Plans) -> None:
    parsed = parse_ruleset(content(plans, "db-master-01", layout.FIREWALL_FILE))
    # One transaction: make sure the table exists, delete it, define it again; never `flush ruleset`,
    # which would drop Docker's, K3s' or the lab's own tables.
    assert parsed["head"] == [f"table inet {layout.TABLE}", f"delete table inet {layout.TABLE}",
                              f"table inet {layout.TABLE} {{"]
    assert "flush" not in content(plans, "db-master-01", layout.FIREWALL_FILE)
    assert parsed["hook"] == "type filter hook input priority filter; policy drop;"
    body = parsed["body"].splitlines()
    assert body[0].strip() == "ct state established,related accept" and body[2].strip() == 'iifname "lo" accept'


def test_each_port_is_open_exactly_to_the_roles_its_module_declares(plans: Plans, site: Site) -> None:
    table = host_ports(site)
    for server in site.servers:
        parsed = parse_ruleset(content(plans, server.hostname, layout.FIREWALL_FILE))
        wanted = {("tcp", 22, "installer")}
        for _module, port in table[server.hostname]:
            if port.loopback:
                continue
            for token in port.allow_from:
                if token == "install":
                    wanted.add((port.protocol, port.number, "installer"))
                elif token == LOAD_BALANCER:
                    wanted |= {(port.protocol, port.number, "lb_" + lb.name.removeprefix("lb-").replace("-", "_"))
                               for lb in site.config.load_balancers
                               if lb.target_role == port.role and port.number in lb.ports}
                elif site.with_role(token):
                    wanted.add((port.protocol, port.number, "role_" + token.replace("-", "_")))
        assert set(parsed["rules"]) == wanted, server.hostname
        for name, elements in parsed["sets"].items():
            if name.startswith("role_"):
                role = name.removeprefix("role_").replace("_", "-")
                assert elements == {str(s.private_ip) for s in site.with_role(role)}, (server.hostname, name)


def test_db_servers_take_postgres_from_haproxy_and_db_but_never_from_app(plans: Plans) -> None:
    parsed = parse_ruleset(content(plans, "db-master-01", layout.FIREWALL_FILE))
    assert {s for p, port, s in parsed["rules"] if port == 5432} == {"role_haproxy", "role_db", "installer"}
    assert parsed["sets"]["role_haproxy"] == HAPROXY_IPS and parsed["sets"]["role_db"] == DB_IPS
    assert "role_app" not in parsed["sets"]  # no rule of a db server names the app servers at all
    assert parsed["sets"]["installer"] == {INSTALLER_IP}


def test_a_load_balancer_reaches_only_the_role_and_ports_it_forwards(plans: Plans, site: Site) -> None:
    haproxy = parse_ruleset(content(plans, "haproxy-01", layout.FIREWALL_FILE))
    from_lb = {port for p, port, s in haproxy["rules"] if s == "lb_internal"}
    internal = next(lb for lb in site.config.load_balancers if lb.name == "lb-internal")
    assert {5432, 5433, 6432, 6379, 5672} <= from_lb == set(internal.ports)
    assert haproxy["sets"]["lb_internal"] == {"10.0.0.10"}
    assert "lb_mariadb" not in haproxy["sets"]  # 10.0.0.20 forwards to proxysql only
    assert {s for p, port, s in haproxy["rules"] if port == 8404} == {"installer", "role_monitor"}  # stats


def test_admin_networks_reach_ssh_of_the_install_servers_only(seed_site: Path) -> None:
    path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(path.read_text())
    config["base_os"]["ssh"]["admin_networks"] = ["203.0.113.0/24", "203.0.113.7/32"]
    path.write_text(yaml.safe_dump(config))
    site = load_site(seed_site)
    plans = MODULE.render(site)
    install = parse_ruleset(content(plans, "install-01", layout.FIREWALL_FILE))
    assert ("tcp", 22, "admin_networks") in install["rules"]
    assert install["sets"]["admin_networks"] == {"203.0.113.0/24"}  # .7 is inside: one element (no overlap)
    assert "flags interval" in content(plans, "install-01", layout.FIREWALL_FILE)
    assert "admin_networks" not in parse_ruleset(content(plans, "db-master-01", layout.FIREWALL_FILE))["sets"]


def test_the_hash_comment_names_the_body_and_a_moved_server_changes_one_set(seed_site: Path, site: Site) -> None:
    before = MODULE.firewalls(site)["db-master-01"]
    assert parse_ruleset(before.text())["comment"] == f"{layout.HASH_MARK}{before.digest}"
    servers = (seed_site / "servers.tsv").read_text().replace("10.0.0.12\t", "10.0.0.13\t")
    (seed_site / "servers.tsv").write_text(servers)
    after = MODULE.firewalls(load_site(seed_site))["db-master-01"]
    assert after.digest != before.digest
    old, new = parse_ruleset(before.text()), parse_ruleset(after.text())
    assert old["rules"] == new["rules"]
    assert {k for k in old["sets"] if old["sets"][k] != new["sets"][k]} == {"role_haproxy"}


def test_site_rules_open_a_port_to_roles_and_networks(seed_site: Path) -> None:
    path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(path.read_text())
    config["base_os"]["firewall"]["open"] = [{"port": 9100, "role": "app", "allow_from": ["monitor", "10.0.7.0/24"],
                                              "service": "node-exporter"}]
    path.write_text(yaml.safe_dump(config))
    fw = MODULE.firewalls(load_site(seed_site))["app-01"]
    parsed = parse_ruleset(fw.text())
    assert {("tcp", 9100, "role_monitor"), ("tcp", 9100, "net_10_0_7_0_24")} <= set(parsed["rules"])
    assert fw.allowed("tcp", 9100, "10.0.7.33") and not fw.allowed("tcp", 9100, "10.0.0.120")


def test_sshd_dropin_is_key_only_and_read_first(plans: Plans, site: Site) -> None:
    text = content(plans, "db-master-01", layout.SSHD_DROPIN)
    values = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert values["PasswordAuthentication"] == "no" and values["KbdInteractiveAuthentication"] == "no"
    assert values["PermitRootLogin"] == "prohibit-password" and values["PubkeyAuthentication"] == "yes"
    assert values["MaxAuthTries"] == "3" and values["LoginGraceTime"] == "20" and values["AllowUsers"] == "root"
    assert layout.SSHD_DROPIN.endswith("/00-keybuzz.conf")  # before Debian's and cloud-init's 50-*.conf


def test_include_first_puts_the_dropins_before_every_setting() -> None:
    lab = ("# keybuzz lab host sshd\nListenAddress 10.77.0.11\nPasswordAuthentication no\n"
           "Include /etc/ssh/sshd_config.d/*.conf\n")
    edited = sshd.include_first(lab)
    directives = [line for line in edited.splitlines() if line and not line.startswith("#")]
    assert directives[0] == layout.SSHD_INCLUDE and directives.count(layout.SSHD_INCLUDE) == 1
    assert "ListenAddress 10.77.0.11" in directives
    assert sshd.include_first(edited) == edited  # idempotent
    debian = "# comment\n\nInclude /etc/ssh/sshd_config.d/*.conf\n\nKbdInteractiveAuthentication no\nUsePAM yes\n"
    assert sshd.include_first(debian) == debian  # Debian's default is already right: not touched


CAPTURED_SSHD_T = """port 22
listenaddress 10.89.0.126:22
logingracetime 20
maxauthtries 3
clientaliveinterval 300
clientalivecountmax 3
permitrootlogin without-password
pubkeyauthentication yes
passwordauthentication no
kbdinteractiveauthentication no
x11forwarding no
permitemptypasswords no
usedns no
allowtcpforwarding no
allowagentforwarding no
pidfile /run/sshd.pid
allowusers root
authenticationmethods any
permittunnel no
"""


def test_sshd_settings_in_force_are_read_back(site: Site) -> None:
    ssh = site.settings(BaseOsSettings).ssh
    effective = sshd.parse_effective(CAPTURED_SSHD_T)  # captured from a lab host's `sshd -T -C ...`
    assert sshd.effective_problems(ssh, effective) == []
    assert sshd.installer_problems("root", "10.89.0.1", ["root"], effective) == []
    overridden = sshd.parse_effective(CAPTURED_SSHD_T.replace("passwordauthentication no",
                                                              "passwordauthentication yes"))
    assert sshd.effective_problems(ssh, overridden) == ["PasswordAuthentication is yes in force, wanted no"]


@pytest.mark.parametrize(("users", "groups", "refused"), [
    (["root"], [], False),
    (["admin", "root@10.89.0.0/16"], [], False),
    (["root@10.1.0.0/16"], [], True),
    (["deploy"], [], True),
    (["ro?t"], ["wheel"], True),
    ([], ["wheel"], False),
])
def test_allow_users_and_groups_decide_like_sshd(users: list[str], groups: list[str], refused: bool) -> None:
    answer = sshd.user_allowed("root", "10.89.0.1", ["root", "wheel"] if not users else ["root"], users, groups)
    assert (answer is not None) == refused, answer


def test_sysctl_files_keep_machine_wide_keys_apart(plans: Plans) -> None:
    def values(path: str) -> dict[str, str]:
        return dict(line.split(" = ", 1) for line in content(plans, "redis-01", path).splitlines()
                    if " = " in line and not line.startswith("#"))

    net, machine = values(layout.SYSCTL_NET), values(layout.SYSCTL_MACHINE)
    assert net == sysctl.NET and machine == sysctl.MACHINE
    assert all(k.startswith("net.") for k in net)
    assert not any(k.startswith(("vm.", "kernel.", "fs.")) for k in net)
    assert {"vm.swappiness", "net.core.netdev_max_backlog"} <= set(machine)  # the latter has no per-netns copy
    assert net["net.core.somaxconn"] == "4096" and net["net.ipv4.tcp_syncookies"] == "1"


def test_machine_wide_files_are_left_out_of_what_a_lab_host_converges(plans: Plans) -> None:
    kept = {f.path for f in local_part(plans["db-master-01"]).files}
    assert kept.isdisjoint(layout.MACHINE_WIDE_FILES)
    rendered = {f.path for f in plans["db-master-01"].files}
    assert {layout.SYSCTL_MACHINE, layout.TIMESYNCD_DROPIN, layout.RUNTIME_PIN} <= rendered
    assert {layout.FIREWALL_FILE, layout.SSHD_DROPIN, layout.SYSCTL_NET, layout.RESOLV_CONF} <= kept


def test_resolv_conf_names_the_site_resolvers(plans: Plans, site: Site) -> None:
    text = content(plans, "app-01", layout.RESOLV_CONF)
    lines = [line.split() for line in text.splitlines() if not line.startswith("#")]
    assert [f[1] for f in lines if f[0] == "nameserver"] == [str(ip) for ip in site.config.dns_servers]
    assert ["search", "keybuzz.io"] in lines
    assert "make_resolv_conf() { :; }" in content(plans, "app-01", layout.DHCLIENT_HOOK)


def test_container_runtime_is_pinned_and_docker_key_checked(plans: Plans, site: Site) -> None:
    pin = content(plans, "db-master-01", layout.RUNTIME_PIN)
    fields = dict(line.split(": ", 1) for line in pin.splitlines() if ": " in line and not line.startswith("#"))
    chosen = runtime.runtime(site)
    assert chosen.cli == "docker"
    assert fields == {"Package": "docker-ce docker-ce-cli", "Pin": f"version {chosen.version}", "Pin-Priority": "1001"}
    script = chosen.install_script()
    assert f"docker-ce={chosen.version}" in script and runtime.DOCKER_KEY_FINGERPRINT in script
    assert "apt-mark hold docker-ce docker-ce-cli" in script and "| sh" not in script
    assert f"signed-by={layout.DOCKER_KEYRING}" in content(plans, "db-master-01", layout.DOCKER_LIST)


def test_a_source_no_server_has_opens_nothing(seed_site: Path, kb) -> None:
    kb.write_servers(seed_site, kb.small_rows())  # no monitor, no app, no install server
    path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(path.read_text())
    config["base_os"]["installer"] = ["10.0.0.250"]
    path.write_text(yaml.safe_dump(config))
    fws = MODULE.firewalls(load_site(seed_site))
    fw = fws["db-0"]
    assert ("tcp", 8008, "Patroni REST API", "postgres", "monitor") in fw.unreachable
    assert not any(s.name == "role_monitor" for s in fw.sets)
    assert fw.allowed("tcp", 22, "10.0.0.250") and not fw.allowed("tcp", 22, "10.0.0.11")
    counts = firewall.rules_by_role(fws.values())
    assert counts["haproxy"] > counts["db"] > counts["redis"] - 3


def test_ssh_from_roles_adds_those_roles_only(seed_site: Path) -> None:
    path = seed_site / "keybuzz.yaml"
    config = yaml.safe_load(path.read_text())
    config["base_os"]["ssh"]["from_roles"] = ["monitor"]
    path.write_text(yaml.safe_dump(config))
    fw = MODULE.firewalls(load_site(seed_site))["queue-01"]
    assert {a.source.name for a in fw.allows if a.port == 22} == {"installer", "role_monitor"}
